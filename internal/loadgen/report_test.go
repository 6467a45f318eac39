package loadgen

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestTableAndJSON(t *testing.T) {
	rs := []Result{
		{
			Scenario: "smtp", Name: "smtp 10x4KiB c=2", Ops: 10, Bytes: 40960,
			Elapsed: time.Second, OpsPerSec: 10, MBPerSec: 0.04096,
			Latency: Latency{P50: 500 * time.Microsecond, P90: 2 * time.Millisecond, P99: 20 * time.Millisecond, Max: 2 * time.Second},
			Errors:  map[string]int64{"550": 3, "eof": 1},
			Server:  &Memory{PID: 1, BeforeKiB: 10240, PeakKiB: 20480, AfterKiB: 15000},
			Samples: []time.Duration{time.Millisecond, 2 * time.Second},
		},
		{Scenario: "disk", Name: "disk", Ops: 1},
	}
	var tb bytes.Buffer
	Table(&tb, rs)
	out := tb.String()
	for _, want := range []string{"smtp 10x4KiB c=2", "500µs", "2.00ms", "20.0ms", "2.00s", "550:3 eof:1", "10.0/20.0", "p99"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 3 {
		t.Errorf("table has %d lines, want 3:\n%s", n, out)
	}

	var jb bytes.Buffer
	if err := WriteJSON(&jb, rs); err != nil {
		t.Fatal(err)
	}
	var back []Result
	if err := json.Unmarshal(jb.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back[0].Samples != nil {
		t.Errorf("samples went into the JSON: %s", jb.String())
	}
	if len(back) != 2 || back[0].Latency != rs[0].Latency || back[0].Errors["550"] != 3 || *back[0].Server != *rs[0].Server || back[1].Server != nil {
		t.Errorf("JSON round trip: %+v", back)
	}
	jb.Reset()
	if err := WriteJSON(&jb, nil); err != nil || strings.TrimSpace(jb.String()) != "[]" {
		t.Errorf("WriteJSON(nil) = %q, %v", jb.String(), err)
	}
}
