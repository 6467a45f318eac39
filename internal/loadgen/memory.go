package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// ReadRSS returns the resident set size (VmRSS) of process pid in KiB, read
// from /proc/PID/status.
func ReadRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("read rss of %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		fields := bytes.Fields(rest)
		if len(fields) == 0 {
			break
		}
		kib, err := strconv.ParseInt(string(fields[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read rss of %d: %w", pid, err)
		}
		return kib, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read rss of %d: %w", pid, err)
	}
	return 0, fmt.Errorf("read rss of %d: no VmRSS line", pid)
}

// MemSampler polls a process's RSS in the background and keeps its peak.
type MemSampler struct {
	pid    int
	before int64
	stop   chan struct{}
	done   chan struct{}

	mu   sync.Mutex
	peak int64
}

// SampleMemory reads pid's RSS now and then every interval (10ms when
// every <= 0) until Stop. A process that cannot be read leaves zeros.
func SampleMemory(pid int, every time.Duration) *MemSampler {
	if every <= 0 {
		every = 10 * time.Millisecond
	}
	before, _ := ReadRSS(pid)
	m := &MemSampler{
		pid:    pid,
		before: before,
		peak:   before,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go m.loop(every)
	return m
}

func (m *MemSampler) loop(every time.Duration) {
	defer close(m.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.observe()
		}
	}
}

func (m *MemSampler) observe() int64 {
	kib, err := ReadRSS(m.pid)
	if err != nil {
		return 0
	}
	m.mu.Lock()
	if kib > m.peak {
		m.peak = kib
	}
	m.mu.Unlock()
	return kib
}

// Stop ends the sampling, reads the RSS once more and reports before, peak
// and after.
func (m *MemSampler) Stop() Memory {
	close(m.stop)
	<-m.done
	after := m.observe()
	m.mu.Lock()
	defer m.mu.Unlock()
	return Memory{PID: m.pid, BeforeKiB: m.before, PeakKiB: m.peak, AfterKiB: after}
}
