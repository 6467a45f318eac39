package loadgen

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		d := make([]time.Duration, len(v))
		for i, x := range v {
			d[i] = time.Duration(x) * time.Millisecond
		}
		return d
	}
	seq := func(n int) []time.Duration {
		d := make([]time.Duration, n)
		for i := range d {
			d[i] = time.Duration(n-i) * time.Millisecond // reversed: must be sorted
		}
		return d
	}
	tests := []struct {
		name string
		in   []time.Duration
		want Latency
	}{
		{"empty", nil, Latency{}},
		{"one", ms(7), Latency{7e6, 7e6, 7e6, 7e6}},
		{"two", ms(9, 1), Latency{1e6, 9e6, 9e6, 9e6}},
		{"ten", seq(10), Latency{5e6, 9e6, 10e6, 10e6}},
		{"hundred", seq(100), Latency{50e6, 90e6, 99e6, 100e6}},
		{"hundred and one", seq(101), Latency{51e6, 91e6, 100e6, 101e6}},
		{"thousand", seq(1000), Latency{500e6, 900e6, 990e6, 1000e6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentiles(tt.in); got != tt.want {
				t.Errorf("percentiles = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSampleMemoryOwnProcess(t *testing.T) {
	kib, err := ReadRSS(os.Getpid())
	if err != nil || kib <= 0 {
		t.Fatalf("ReadRSS(self) = %d, %v", kib, err)
	}
	m := SampleMemory(os.Getpid(), time.Millisecond)
	mem := m.Stop()
	if mem.PID != os.Getpid() || mem.BeforeKiB <= 0 || mem.AfterKiB <= 0 || mem.PeakKiB < mem.BeforeKiB || mem.PeakKiB < mem.AfterKiB {
		t.Errorf("Memory = %+v", mem)
	}
	if _, err := ReadRSS(1 << 30); err == nil {
		t.Error("ReadRSS of a process that does not exist: no error")
	}
}

func TestRunDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "md")
	res, err := RunDisk(context.Background(), DiskConfig{Dir: dir, Workers: 4, Ops: 30, Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 30 || res.Bytes != 30000 || len(res.Errors) != 0 || res.Latency.Max <= 0 || res.OpsPerSec <= 0 {
		t.Errorf("result = %+v", res)
	}
	if len(res.Samples) != 30 || !slices.IsSorted(res.Samples) || res.Samples[29] != res.Latency.Max {
		t.Errorf("samples %v, want 30 sorted ending at max %v", res.Samples, res.Latency.Max)
	}
	if res.Scenario != "disk" || res.Name != "disk w=4 30x1000B" {
		t.Errorf("scenario %q name %q", res.Scenario, res.Name)
	}
	for _, sub := range []string{"tmp", "new"} {
		left, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 0 {
			t.Errorf("%s/ holds %d files after the run", sub, len(left))
		}
	}
	if _, err := RunDisk(context.Background(), DiskConfig{Dir: dir}); err == nil {
		t.Error("Ops 0: no error")
	}
}
