// Package logs is the local CloudWatch Logs service: log groups and streams
// kept in memory and appended to files under a data directory, so that a
// restarted endpoint still serves the lines of old jobs. The training side
// writes lines through Store.Put as they are printed; clients read them with
// GetLogEvents, FilterLogEvents and DescribeLogStreams.
package logs

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Event is one log line.
type Event struct {
	Timestamp int64  `json:"timestamp"` // epoch milliseconds
	Message   string `json:"message"`
	Ingestion int64  `json:"ingestionTime"`
}

type stream struct {
	name     string
	created  int64
	events   []Event
	file     *os.File // nil without a data directory
	lastIngs int64
}

type group struct {
	name    string
	created int64
	streams map[string]*stream
}

// Store holds every group and stream; safe for concurrent use.
type Store struct {
	dir    string
	region string
	acct   string

	mu     sync.Mutex
	groups map[string]*group
}

// Open returns a store that keeps its files under dir (none when dir is
// empty) and loads what an earlier run left there.
func Open(dir, region, account string) (*Store, error) {
	s := &Store{dir: dir, region: region, acct: account, groups: map[string]*group{}}
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating logs dir: %w", err)
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// Close closes the stream files.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, g := range s.groups {
		for _, st := range g.streams {
			if st.file != nil {
				errs = append(errs, st.file.Close())
				st.file = nil
			}
		}
	}
	return errors.Join(errs...)
}

// CreateGroup creates a log group; it reports whether it was new.
func (s *Store) CreateGroup(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.groups[name]; ok {
		return false
	}
	s.groups[name] = &group{name: name, created: time.Now().UnixMilli(), streams: map[string]*stream{}}
	if s.dir != "" {
		_ = os.MkdirAll(filepath.Join(s.dir, url.PathEscape(name)), 0o755)
	}
	return true
}

// CreateStream creates a stream (and its group when missing); it reports
// whether the stream was new.
func (s *Store) CreateStream(groupName, name string) (bool, error) {
	s.CreateGroup(groupName)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, created, err := s.streamLocked(groupName, name, true)
	return created, err
}

// Put appends lines to a stream, creating the group and stream when missing.
// Each message is one event stamped with t.
func (s *Store) Put(groupName, streamName string, t time.Time, messages ...string) error {
	s.CreateGroup(groupName)
	s.mu.Lock()
	defer s.mu.Unlock()
	st, _, err := s.streamLocked(groupName, streamName, true)
	if err != nil {
		return err
	}
	now := time.Now().UnixMilli()
	for _, m := range messages {
		ev := Event{Timestamp: t.UnixMilli(), Message: m, Ingestion: now}
		st.events = append(st.events, ev)
		st.lastIngs = now
		if st.file != nil {
			if err := appendEvent(st, ev); err != nil {
				return err
			}
		}
	}
	return nil
}

// streamLocked finds (or, with create, makes) a stream.
func (s *Store) streamLocked(groupName, name string, create bool) (*stream, bool, error) {
	g, ok := s.groups[groupName]
	if !ok {
		return nil, false, errNoGroup
	}
	if st, ok := g.streams[name]; ok {
		return st, false, nil
	}
	if !create {
		return nil, false, errNoStream
	}
	st := &stream{name: name, created: time.Now().UnixMilli()}
	if s.dir != "" {
		f, err := os.OpenFile(s.streamPath(groupName, name), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, false, fmt.Errorf("creating log stream file: %w", err)
		}
		st.file = f
	}
	g.streams[name] = st
	return st, true, nil
}

func (s *Store) streamPath(groupName, name string) string {
	return filepath.Join(s.dir, url.PathEscape(groupName), url.PathEscape(name)+".jsonl")
}

func (s *Store) load() error {
	groups, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("reading logs dir: %w", err)
	}
	for _, gd := range groups {
		if !gd.IsDir() {
			continue
		}
		gname, err := url.PathUnescape(gd.Name())
		if err != nil {
			continue
		}
		g := &group{name: gname, streams: map[string]*stream{}}
		if info, err := gd.Info(); err == nil {
			g.created = info.ModTime().UnixMilli()
		}
		s.groups[gname] = g
		files, err := os.ReadDir(filepath.Join(s.dir, gd.Name()))
		if err != nil {
			return fmt.Errorf("reading log group dir: %w", err)
		}
		for _, fd := range files {
			base, ok := strings.CutSuffix(fd.Name(), ".jsonl")
			if !ok {
				continue
			}
			sname, err := url.PathUnescape(base)
			if err != nil {
				continue
			}
			st, err := loadStream(filepath.Join(s.dir, gd.Name(), fd.Name()), sname)
			if err != nil {
				return err
			}
			g.streams[sname] = st
		}
	}
	return nil
}

func loadStream(path, name string) (*stream, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log stream file: %w", err)
	}
	st := &stream{name: name, file: f}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev Event
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			st.events = append(st.events, ev)
			st.lastIngs = ev.Ingestion
		}
	}
	if len(st.events) > 0 {
		st.created = st.events[0].Ingestion
	}
	return st, nil
}

var (
	errNoGroup  = errors.New("the specified log group does not exist")
	errNoStream = errors.New("the specified log stream does not exist")
)

func appendEvent(st *stream, ev Event) error {
	b, _ := json.Marshal(ev)
	if _, err := st.file.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("appending to log stream %s: %w", st.name, err)
	}
	return nil
}

func ingestNow() int64 { return time.Now().UnixMilli() }

// Last returns the timestamp (epoch ms) of a stream's last event.
func (s *Store) Last(groupName, streamName string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, _, err := s.streamLocked(groupName, streamName, false)
	if err != nil || len(st.events) == 0 {
		return 0, false
	}
	return st.events[len(st.events)-1].Timestamp, true
}
