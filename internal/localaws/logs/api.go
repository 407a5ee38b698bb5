package logs

import (
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/slipway-ml/slipway/internal/localaws/awsjson"
)

// TargetPrefix is the X-Amz-Target prefix of CloudWatch Logs operations.
const TargetPrefix = "Logs_20140328."

// Handler returns the handler of one operation (the part of X-Amz-Target
// after the prefix), or nil when it is not served.
func (s *Store) Handler(op string, log *slog.Logger) http.Handler {
	return awsjson.Ops{
		"CreateLogGroup":     s.createLogGroup,
		"CreateLogStream":    s.createLogStream,
		"PutLogEvents":       s.putLogEvents,
		"DescribeLogStreams": s.describeLogStreams,
		"GetLogEvents":       s.getLogEvents,
		"FilterLogEvents":    s.filterLogEvents,
	}.Handler(op, log)
}

func notFound(err error) error {
	return awsjson.Errorf("ResourceNotFoundException", "%s.", upperFirst(err.Error()))
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (s *Store) createLogGroup(r *http.Request) (any, error) {
	var in struct {
		LogGroupName string `json:"logGroupName"`
	}
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	if in.LogGroupName == "" {
		return nil, awsjson.Errorf("InvalidParameterException", "logGroupName is required")
	}
	if !s.CreateGroup(in.LogGroupName) {
		return nil, awsjson.Errorf("ResourceAlreadyExistsException", "The specified log group already exists")
	}
	return nil, nil
}

func (s *Store) createLogStream(r *http.Request) (any, error) {
	var in struct {
		LogGroupName  string `json:"logGroupName"`
		LogStreamName string `json:"logStreamName"`
	}
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	if in.LogStreamName == "" {
		return nil, awsjson.Errorf("InvalidParameterException", "logStreamName is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.groups[in.LogGroupName]; !ok {
		return nil, notFound(errNoGroup)
	}
	_, created, err := s.streamLocked(in.LogGroupName, in.LogStreamName, true)
	if err != nil {
		return nil, err
	}
	if !created {
		return nil, awsjson.Errorf("ResourceAlreadyExistsException", "The specified log stream already exists")
	}
	return nil, nil
}

func (s *Store) putLogEvents(r *http.Request) (any, error) {
	var in struct {
		LogGroupName  string  `json:"logGroupName"`
		LogStreamName string  `json:"logStreamName"`
		LogEvents     []Event `json:"logEvents"`
	}
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.groups[in.LogGroupName]; !ok {
		return nil, notFound(errNoGroup)
	}
	st, _, err := s.streamLocked(in.LogGroupName, in.LogStreamName, false)
	if err != nil {
		return nil, notFound(err)
	}
	for _, ev := range in.LogEvents {
		ev.Ingestion = ingestNow()
		st.events = append(st.events, ev)
		st.lastIngs = ev.Ingestion
		if st.file != nil {
			if err := appendEvent(st, ev); err != nil {
				return nil, err
			}
		}
	}
	return map[string]any{}, nil
}

type streamOut struct {
	LogStreamName       string `json:"logStreamName"`
	CreationTime        int64  `json:"creationTime"`
	FirstEventTimestamp int64  `json:"firstEventTimestamp,omitempty"`
	LastEventTimestamp  int64  `json:"lastEventTimestamp,omitempty"`
	LastIngestionTime   int64  `json:"lastIngestionTime,omitempty"`
	UploadSequenceToken string `json:"uploadSequenceToken,omitempty"`
	Arn                 string `json:"arn"`
	StoredBytes         int64  `json:"storedBytes"`
}

func (s *Store) describeLogStreams(r *http.Request) (any, error) {
	var in struct {
		LogGroupName        string `json:"logGroupName"`
		LogStreamNamePrefix string `json:"logStreamNamePrefix"`
		OrderBy             string `json:"orderBy"`
		Descending          bool   `json:"descending"`
		Limit               int    `json:"limit"`
		NextToken           string `json:"nextToken"`
	}
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	if in.OrderBy == "LastEventTime" && in.LogStreamNamePrefix != "" {
		return nil, awsjson.Errorf("InvalidParameterException", "Cannot order by LastEventTime with a logStreamNamePrefix.")
	}
	limit, err := pageLimit(in.Limit, 50)
	if err != nil {
		return nil, err
	}
	start, err := offsetToken(in.NextToken)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	g, ok := s.groups[in.LogGroupName]
	var all []streamOut
	if ok {
		for _, st := range g.streams {
			if !strings.HasPrefix(st.name, in.LogStreamNamePrefix) {
				continue
			}
			o := streamOut{LogStreamName: st.name, CreationTime: st.created, LastIngestionTime: st.lastIngs,
				Arn: fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s:log-stream:%s", s.region, s.acct, g.name, st.name)}
			if n := len(st.events); n > 0 {
				o.FirstEventTimestamp = st.events[0].Timestamp
				o.LastEventTimestamp = st.events[n-1].Timestamp
			}
			all = append(all, o)
		}
	}
	s.mu.Unlock()
	if !ok {
		return nil, notFound(errNoGroup)
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i], all[j]
		less := a.LogStreamName < b.LogStreamName
		if in.OrderBy == "LastEventTime" && a.LastEventTimestamp != b.LastEventTimestamp {
			less = a.LastEventTimestamp < b.LastEventTimestamp
		}
		return less
	})
	if in.Descending {
		slices.Reverse(all)
	}
	page, next := paginate(all, start, limit)
	out := map[string]any{"logStreams": page}
	if next != "" {
		out["nextToken"] = next
	}
	return out, nil
}

func (s *Store) getLogEvents(r *http.Request) (any, error) {
	var in struct {
		LogGroupName  string `json:"logGroupName"`
		LogStreamName string `json:"logStreamName"`
		StartTime     *int64 `json:"startTime"`
		EndTime       *int64 `json:"endTime"`
		NextToken     string `json:"nextToken"`
		Limit         int    `json:"limit"`
		StartFromHead bool   `json:"startFromHead"`
	}
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	limit, err := pageLimit(in.Limit, 10000)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	var evs []Event
	st, _, err := s.streamLocked(in.LogGroupName, in.LogStreamName, false)
	if err == nil {
		for _, ev := range st.events {
			if in.StartTime != nil && ev.Timestamp < *in.StartTime || in.EndTime != nil && ev.Timestamp >= *in.EndTime {
				continue
			}
			evs = append(evs, ev)
		}
	}
	s.mu.Unlock()
	if err != nil {
		return nil, notFound(err)
	}
	lo, hi, err := eventWindow(len(evs), in.NextToken, in.StartFromHead, limit)
	if err != nil {
		return nil, err
	}
	page := evs[lo:hi]
	if page == nil {
		page = []Event{}
	}
	return map[string]any{
		"events":            page,
		"nextForwardToken":  fmt.Sprintf("f/%020d", hi),
		"nextBackwardToken": fmt.Sprintf("b/%020d", lo),
	}, nil
}

// eventWindow picks the slice [lo, hi) of n events that a GetLogEvents call
// returns. A forward token f/N reads on from event N, a backward token b/N
// reads the page before it; without a token the call reads from the head or
// the tail. At the end of a stream the forward token comes back unchanged,
// which is how clients know they are caught up.
func eventWindow(n int, token string, fromHead bool, limit int) (lo, hi int, err error) {
	if token == "" {
		if fromHead {
			return 0, min(n, limit), nil
		}
		return max(0, n-limit), n, nil
	}
	dir, num, ok := strings.Cut(token, "/")
	pos, perr := strconv.Atoi(num)
	if !ok || perr != nil || pos < 0 || (dir != "f" && dir != "b") {
		return 0, 0, awsjson.Errorf("InvalidParameterException", "The specified nextToken is invalid.")
	}
	pos = min(pos, n)
	if dir == "f" {
		return pos, min(n, pos+limit), nil
	}
	return max(0, pos-limit), pos, nil
}

type filteredEvent struct {
	LogStreamName string `json:"logStreamName"`
	Timestamp     int64  `json:"timestamp"`
	Message       string `json:"message"`
	IngestionTime int64  `json:"ingestionTime"`
	EventID       string `json:"eventId"`
}

func (s *Store) filterLogEvents(r *http.Request) (any, error) {
	var in struct {
		LogGroupName        string   `json:"logGroupName"`
		LogStreamNames      []string `json:"logStreamNames"`
		LogStreamNamePrefix string   `json:"logStreamNamePrefix"`
		StartTime           *int64   `json:"startTime"`
		EndTime             *int64   `json:"endTime"`
		FilterPattern       string   `json:"filterPattern"`
		NextToken           string   `json:"nextToken"`
		Limit               int      `json:"limit"`
	}
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	if len(in.LogStreamNames) > 0 && in.LogStreamNamePrefix != "" {
		return nil, awsjson.Errorf("InvalidParameterException", "logStreamNames and logStreamNamePrefix are mutually exclusive.")
	}
	limit, err := pageLimit(in.Limit, 10000)
	if err != nil {
		return nil, err
	}
	start, err := offsetToken(in.NextToken)
	if err != nil {
		return nil, err
	}
	match := MatchPattern(in.FilterPattern)
	want := map[string]bool{}
	for _, n := range in.LogStreamNames {
		want[n] = true
	}
	s.mu.Lock()
	g, ok := s.groups[in.LogGroupName]
	var all []filteredEvent
	if ok {
		for _, st := range g.streams {
			if len(want) > 0 && !want[st.name] || !strings.HasPrefix(st.name, in.LogStreamNamePrefix) {
				continue
			}
			for i, ev := range st.events {
				if in.StartTime != nil && ev.Timestamp < *in.StartTime || in.EndTime != nil && ev.Timestamp > *in.EndTime || !match(ev.Message) {
					continue
				}
				all = append(all, filteredEvent{LogStreamName: st.name, Timestamp: ev.Timestamp, Message: ev.Message,
					IngestionTime: ev.Ingestion, EventID: fmt.Sprintf("%s-%d", st.name, i)})
			}
		}
	}
	s.mu.Unlock()
	if !ok {
		return nil, notFound(errNoGroup)
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].Timestamp != all[j].Timestamp {
			return all[i].Timestamp < all[j].Timestamp
		}
		return all[i].EventID < all[j].EventID
	})
	page, next := paginate(all, start, limit)
	out := map[string]any{"events": page, "searchedLogStreams": []any{}}
	if next != "" {
		out["nextToken"] = next
	}
	return out, nil
}

// MatchPattern compiles the subset of CloudWatch filter patterns that plain
// searches use: space-separated terms that must all appear, quoted phrases,
// and -term exclusions. An empty pattern matches everything.
func MatchPattern(pattern string) func(string) bool {
	var must, not []string
	rest := strings.TrimSpace(pattern)
	for rest != "" {
		var term string
		neg := false
		if strings.HasPrefix(rest, "-") {
			neg, rest = true, rest[1:]
		}
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				term, rest = rest[1:], ""
			} else {
				term, rest = rest[1:1+end], rest[2+end:]
			}
		} else {
			term, rest, _ = strings.Cut(rest, " ")
		}
		rest = strings.TrimSpace(rest)
		if term == "" {
			continue
		}
		if neg {
			not = append(not, term)
		} else {
			must = append(must, term)
		}
	}
	return func(msg string) bool {
		for _, t := range must {
			if !strings.Contains(msg, t) {
				return false
			}
		}
		for _, t := range not {
			if strings.Contains(msg, t) {
				return false
			}
		}
		return true
	}
}

func pageLimit(limit, maxLimit int) (int, error) {
	switch {
	case limit == 0:
		return maxLimit, nil
	case limit < 0 || limit > maxLimit:
		return 0, awsjson.Errorf("InvalidParameterException", "limit must be within 1..%d", maxLimit)
	}
	return limit, nil
}

func offsetToken(tok string) (int, error) {
	if tok == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(strings.TrimPrefix(tok, "o/"))
	if err != nil || n < 0 || !strings.HasPrefix(tok, "o/") {
		return 0, awsjson.Errorf("InvalidParameterException", "The specified nextToken is invalid.")
	}
	return n, nil
}

func paginate[T any](all []T, start, limit int) ([]T, string) {
	start = min(start, len(all))
	end := min(len(all), start+limit)
	page := all[start:end]
	if page == nil {
		page = []T{}
	}
	if end < len(all) {
		return page, "o/" + strconv.Itoa(end)
	}
	return page, ""
}
