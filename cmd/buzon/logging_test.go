package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/buzon-mail/buzon/config"
)

func TestLogSetupSwitchesFormatAndLevel(t *testing.T) {
	var buf bytes.Buffer
	ls := newLogSetup(&buf)
	if err := ls.apply(config.Log{Level: "info", Format: "text"}); err != nil {
		t.Fatal(err)
	}
	// A logger derived at start must follow later changes.
	lg := ls.logger().With("service", "smtp").WithGroup("g")
	lg.Debug("hidden")
	lg.Info("first", "k", 1)
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), "service=smtp") || !strings.Contains(buf.String(), "g.k=1") {
		t.Fatalf("text output %q", buf.String())
	}
	buf.Reset()
	if err := ls.apply(config.Log{Level: "debug", Format: "json"}); err != nil {
		t.Fatal(err)
	}
	lg.Debug("second", "k", 2)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not JSON after the switch: %q", buf.String())
	}
	if rec["msg"] != "second" || rec["service"] != "smtp" || rec["g"].(map[string]any)["k"] != float64(2) {
		t.Fatalf("record %v", rec)
	}
	buf.Reset()
	ls.apply(config.Log{Level: "error", Format: "json"})
	lg.Warn("dropped")
	if buf.Len() != 0 {
		t.Fatalf("warn logged at level error: %q", buf.String())
	}
}
