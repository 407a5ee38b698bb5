package bench

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Machine is what the figures were measured on.
type Machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	MemoryMB int    `json:"memory_mb"`
	Go       string `json:"go"`
	OS       string `json:"os"`
	Date     string `json:"date"`
}

// DescribeMachine reads the machine's CPUs, CPU model and memory from
// /proc (empty where there is no /proc).
func DescribeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH,
		Date: time.Now().UTC().Format(time.DateOnly)}
	m.CPUModel, _ = procField("/proc/cpuinfo", "model name")
	if kb, ok := procKB("/proc/meminfo", "MemTotal"); ok {
		m.MemoryMB = int(kb / 1024)
	}
	return m
}

func (m Machine) String() string {
	return fmt.Sprintf("machine: %d CPUs, %s, %d MB memory, %s %s, %s", m.CPUs, m.CPUModel, m.MemoryMB, m.Go, m.OS, m.Date)
}

// procField returns the value of the first "key: value" line of a /proc file.
func procField(path, key string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// procKB reads a "Key: 123 kB" field of a /proc file.
func procKB(path, key string) (int64, bool) {
	v, ok := procField(path, key)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, "kB")), 10, 64)
	return n, err == nil
}
