package benchsuite

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/internal/loadgen"
	"github.com/buzon-mail/buzon/maildir"
)

// goodRows are rows that meet every target with the default parameters.
func goodRows() map[string]loadgen.Result {
	return map[string]loadgen.Result{
		roleDisk:      {Name: "disk", OpsPerSec: 1000},
		roleSMTP:      {Name: "smtp c=20", OpsPerSec: 900, Latency: loadgen.Latency{P99: 30 * time.Millisecond}},
		roleLargeSMTP: {Name: "large smtp", Server: &loadgen.Memory{BeforeKiB: 10_000, PeakKiB: 12_000}},
		roleLargePOP3: {Name: "large pop3", MBPerSec: 800, Server: &loadgen.Memory{BeforeKiB: 10_000, PeakKiB: 11_000}},
		rolePOP3:      {Name: "pop3", OpsPerSec: 15_000},
		rolePOP3Pipe:  {Name: "pop3 pipeline=16", OpsPerSec: 25_000, MBPerSec: 100},
		roleList:      {Name: "pop3-list", Latency: loadgen.Latency{P50: 80 * time.Millisecond}},
		roleConns:     {Name: "conns", Ops: 10_000, Extra: map[string]any{"rss_per_conn_kib": 12.5}},
	}
}

func TestEvaluate(t *testing.T) {
	p := DefaultParams()
	tests := []struct {
		name   string
		change func(map[string]loadgen.Result)
		idle   int64
		missed []string // names (prefixes) of targets expected unmet
		note   map[string]string
	}{
		{name: "all met", idle: 20 * 1024},
		{name: "smtp below 80% of disk", idle: 20 * 1024, change: func(m map[string]loadgen.Result) {
			r := m[roleSMTP]
			r.OpsPerSec = 799
			m[roleSMTP] = r
		}, missed: []string{"smtp c=20 throughput"}},
		{name: "smtp exactly 80% of disk", idle: 20 * 1024, change: func(m map[string]loadgen.Result) {
			r := m[roleSMTP]
			r.OpsPerSec = 800
			m[roleSMTP] = r
		}},
		{name: "p99 at the limit is a miss", idle: 20 * 1024, change: func(m map[string]loadgen.Result) {
			r := m[roleSMTP]
			r.Latency.P99 = 50 * time.Millisecond
			m[roleSMTP] = r
		}, missed: []string{"smtp c=20 p99"}},
		{name: "large message grows the heap", idle: 20 * 1024, change: func(m map[string]loadgen.Result) {
			r := m[roleLargeSMTP]
			r.Server = &loadgen.Memory{BeforeKiB: 10_000, PeakKiB: 10_000 + 9*1024}
			m[roleLargeSMTP] = r
		}, missed: []string{"large message: server RSS growth receiving"}},
		{name: "pop3 best row decides", idle: 20 * 1024, change: func(m map[string]loadgen.Result) {
			r := m[rolePOP3Pipe]
			r.OpsPerSec = 19_000
			m[rolePOP3Pipe] = r
		}, missed: []string{"pop3 RETR"}},
		{name: "pop3 plain row alone", idle: 20 * 1024, change: func(m map[string]loadgen.Result) {
			delete(m, rolePOP3Pipe)
			r := m[rolePOP3]
			r.OpsPerSec = 21_000
			m[rolePOP3] = r
		}, note: map[string]string{"pop3 RETR": "best of the two pop3 rows: pop3 "}},
		{name: "no disk row", idle: 20 * 1024, change: func(m map[string]loadgen.Result) { delete(m, roleDisk) },
			missed: []string{"smtp c=20 throughput"}, note: map[string]string{"smtp c=20 throughput": "disk limit not measured"}},
		{name: "missing rows", change: func(m map[string]loadgen.Result) { delete(m, roleConns); delete(m, roleList) },
			missed: []string{"pop3-list", "conns: connections greeted", "conns: server RSS", "idle server RSS"},
			note:   map[string]string{"conns: connections greeted": "not measured", "idle server RSS": "not measured"}},
		{name: "conns short and fat", idle: 31 * 1024, change: func(m map[string]loadgen.Result) {
			m[roleConns] = loadgen.Result{Ops: 9_999, Extra: map[string]any{"rss_per_conn_kib": float64(25)}}
		}, missed: []string{"conns: connections greeted", "conns: server RSS", "idle server RSS"}},
		{name: "slow large RETR and list", idle: 20 * 1024, change: func(m map[string]loadgen.Result) {
			r := m[roleLargePOP3]
			r.MBPerSec = 500
			m[roleLargePOP3] = r
			l := m[roleList]
			l.Latency.P50 = 151 * time.Millisecond
			m[roleList] = l
		}, missed: []string{"large message RETR", "pop3-list"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := goodRows()
			if tt.change != nil {
				tt.change(rows)
			}
			ts := evaluate(rows, tt.idle, p)
			if len(ts) != 10 {
				t.Fatalf("%d targets, want 10: %+v", len(ts), ts)
			}
			for _, tg := range ts {
				wantMissed := false
				for _, m := range tt.missed {
					if strings.HasPrefix(tg.Name, m) {
						wantMissed = true
					}
				}
				if tg.Met == wantMissed {
					t.Errorf("%q: met %v (value %v %s limit %v), want %v", tg.Name, tg.Met, tg.Value, tg.Cmp, tg.Limit, !wantMissed)
				}
				for prefix, note := range tt.note {
					if strings.HasPrefix(tg.Name, prefix) && !strings.HasPrefix(tg.Note, note) {
						t.Errorf("%q: note %q, want it to start with %q", tg.Name, tg.Note, note)
					}
				}
			}
		})
	}
}

func TestSMTPTargetNoteRounds(t *testing.T) {
	rounds := func(v ...float64) map[string]any { return map[string]any{"round_ops_per_sec": v} }
	tests := []struct {
		name       string
		disk, smtp map[string]any
		want       string
	}{
		{"one row each", nil, nil,
			"90% of the disk's 1000 durable writes/s; every message fsynced before its 250"},
		{"paired rounds", rounds(500, 1500), rounds(400, 1200),
			"90% of the disk's 1000 durable writes/s over all rounds; per round 80/80%; every message fsynced before its 250"},
		{"after a JSON round trip", map[string]any{"round_ops_per_sec": []any{1000.0, 2000.0, 500.0}},
			map[string]any{"round_ops_per_sec": []any{900.0, 1000.0, 500.0}},
			"90% of the disk's 1000 durable writes/s over all rounds; per round 90/50/100%; every message fsynced before its 250"},
		{"rounds that do not pair", rounds(500, 1500), rounds(400, 1200, 900),
			"90% of the disk's 1000 durable writes/s; every message fsynced before its 250"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := goodRows()
			d, s := rows[roleDisk], rows[roleSMTP]
			d.Extra, s.Extra = tt.disk, tt.smtp
			rows[roleDisk], rows[roleSMTP] = d, s
			for _, tg := range evaluate(rows, 20*1024, DefaultParams()) {
				if tg.Name == "smtp c=20 throughput" {
					if tg.Note != tt.want || tg.Value != 900 || tg.Limit != 800 {
						t.Errorf("value %v limit %v note %q, want 900, 800, %q", tg.Value, tg.Limit, tg.Note, tt.want)
					}
					return
				}
			}
			t.Error("no throughput target")
		})
	}
}

func TestEvaluateValues(t *testing.T) {
	ts := evaluate(goodRows(), 20*1024, DefaultParams())
	want := map[string]struct{ value, limit float64 }{
		"smtp c=20 throughput":                       {900, 800},
		"smtp c=20 p99 latency":                      {30, 50},
		"large message: server RSS growth receiving": {2000.0 / 1024, 8},
		"large message: server RSS growth serving":   {1000.0 / 1024, 8},
		"pop3 RETR 4 x 5000 msgs, total":             {25_000, 20_000},
		"large message RETR":                         {800, 500},
		"pop3-list 50000 msgs: session p50":          {80, 150},
		"conns: connections greeted":                 {10_000, 10_000},
		"conns: server RSS per connection":           {12.5, 25},
		"idle server RSS":                            {20, 30},
	}
	for _, tg := range ts {
		w, ok := want[tg.Name]
		if !ok {
			t.Errorf("unexpected target %q", tg.Name)
			continue
		}
		if tg.Value != round(w.value) || tg.Limit != w.limit {
			t.Errorf("%q: value %v limit %v, want %v and %v", tg.Name, tg.Value, tg.Limit, round(w.value), w.limit)
		}
	}
}

// TestSMTPLatencyNoteNamesDisk: the latency target quotes the disk loop's
// own p99, which tells a slow disk from a slow server.
func TestSMTPLatencyNoteNamesDisk(t *testing.T) {
	rows := goodRows()
	d := rows[roleDisk]
	d.Latency.P99 = 81200 * time.Microsecond
	rows[roleDisk] = d
	for _, tg := range evaluate(rows, 20*1024, DefaultParams()) {
		if tg.Name == "smtp c=20 p99 latency" {
			if !strings.Contains(tg.Note, "own p99 81.2 ms") {
				t.Errorf("note %q does not give the disk loop's p99", tg.Note)
			}
			return
		}
	}
	t.Fatal("no smtp latency target")
}

func TestReferences(t *testing.T) {
	rows := goodRows()
	rows[roleList] = loadgen.Result{Latency: loadgen.Latency{P50: 80 * time.Millisecond},
		Extra: map[string]any{"list_p50_ns": float64(12 * time.Millisecond)}}
	refs := references(rows)
	want := []float64{900, 25_000, 100, 12}
	if len(refs) != len(want) {
		t.Fatalf("%d references, want %d", len(refs), len(want))
	}
	for i, r := range refs {
		if r.Buzon != want[i] {
			t.Errorf("%s (%s): buzon %v, want %v", r.Name, r.Unit, r.Buzon, want[i])
		}
		if r.Value <= 0 || r.Better == "" {
			t.Errorf("%s: reference %v better %q", r.Name, r.Value, r.Better)
		}
	}
}

func TestReportJSONRoundTrip(t *testing.T) {
	rows := goodRows()
	rep := Report{Params: DefaultParams(), IdleRSSKiB: 20480, rows: rows}
	for _, r := range rows {
		rep.Results = append(rep.Results, r)
	}
	rep.Targets = evaluate(rows, rep.IdleRSSKiB, rep.Params)
	rep.Reference = references(rows)
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Results) != len(rows) || len(back.Targets) != 10 || back.Params.Conns != 10_000 {
		t.Fatalf("round trip lost data: %d results, %d targets, params %+v", len(back.Results), len(back.Targets), back.Params)
	}
	var out bytes.Buffer
	rep.Print(&out)
	for _, s := range []string{"targets (issue 6)", "10 of 10 targets met", "Postfix 3.7", "idle server RSS"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("printed report lacks %q:\n%s", s, out.String())
		}
	}
}

func TestFillMaildir(t *testing.T) {
	data := t.TempDir()
	store, err := maildir.New(filepath.Join(data, "mail"), maildir.Options{Hostname: Hostname})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Create("list"); err != nil {
		t.Fatal(err)
	}
	const n, size = 30, 2048
	if err := fillMaildir(context.Background(), data, "list", n, size); err != nil {
		t.Fatal(err)
	}
	md, err := store.Maildir("list")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := md.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != n {
		t.Fatalf("%d messages, want %d", len(msgs), n)
	}
	for _, m := range msgs {
		if m.Size < size || m.Size > size+200 {
			t.Errorf("message size %d, want about %d", m.Size, size)
		}
	}
}

func TestListMessage(t *testing.T) {
	var a, b bytes.Buffer
	date := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	listMessage(&a, "list", 1, 2048, date)
	listMessage(&b, "list", 2, 2048, date)
	if bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two messages are identical")
	}
	for _, h := range []string{"From: ", "To: list@localhost", "Date: ", "Message-ID: <1.list@", "Subject: "} {
		if !bytes.Contains(a.Bytes(), []byte("\r\n"+h)) && !bytes.HasPrefix(a.Bytes(), []byte(h)) {
			t.Errorf("header %q missing", h)
		}
	}
	if !bytes.Contains(a.Bytes(), []byte("\r\n\r\n")) {
		t.Error("no blank line after the header")
	}
	for _, line := range bytes.Split(a.Bytes(), []byte("\r\n")) {
		if len(line) > 998 || bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("bad line %q", line)
		}
	}
}
