package benchsuite

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/internal/testlog"
)

// buzonBinary is $BUZON_BIN (the Makefile sets it) or a fresh build.
func buzonBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BUZON_BIN"); p != "" {
		return p
	}
	bin := filepath.Join(t.TempDir(), "buzon")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/buzon-mail/buzon/cmd/buzon").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestRunQuick(t *testing.T) {
	bin := buzonBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var progress testlog.Buffer
	tmp := t.TempDir()
	rep, err := Run(ctx, Options{Buzon: bin, Quick: true, TempDir: tmp, Progress: &progress})
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	if len(rep.Failures) > 0 {
		t.Errorf("failures: %v", rep.Failures)
	}
	p := QuickParams()
	// disk, one smtp row per conns value, fill, 2 pop3, 2 large, list, conns
	if want := 1 + len(p.SMTPConns) + 1 + 2 + 2 + 1 + 1; len(rep.Results) != want {
		t.Fatalf("%d rows, want %d", len(rep.Results), want)
	}
	// The disk limit and the target smtp row come first, each merged from
	// its alternating rounds.
	for i, want := range []struct {
		name string
		ops  int
	}{
		{"disk limit 40x4KiB w=4, 2 rounds", p.DiskOps},
		{"smtp 50x4KiB c=4, 2 rounds alternating with disk", p.SMTPMessages},
	} {
		r := rep.Results[i]
		perRound, _ := r.Extra["round_ops_per_sec"].([]float64)
		if r.Name != want.name || r.Ops != int64(want.ops) || r.Extra["rounds"] != p.PairRounds || len(perRound) != p.PairRounds {
			t.Errorf("row %d: %q, %d ops, extra %v; want %q, %d ops in %d rounds", i, r.Name, r.Ops, r.Extra, want.name, want.ops, p.PairRounds)
		}
	}
	if n := strings.Count(progress.String(), "(round "); n != 2*2*p.PairRounds {
		t.Errorf("%d progress lines name a round, want %d", n, 4*p.PairRounds)
	}
	for _, r := range rep.Results {
		if r.Ops <= 0 {
			t.Errorf("%s: ops %d", r.Name, r.Ops)
		}
		if len(r.Errors) > 0 {
			t.Errorf("%s: errors %v", r.Name, r.Errors)
		}
		if r.Server == nil || r.Server.PeakKiB <= 0 {
			t.Errorf("%s: server memory not sampled: %+v", r.Name, r.Server)
		}
	}
	if rep.IdleRSSKiB <= 0 {
		t.Errorf("idle RSS %d", rep.IdleRSSKiB)
	}
	if len(rep.Targets) != 10 || len(rep.Reference) != 4 {
		t.Errorf("%d targets, %d references", len(rep.Targets), len(rep.Reference))
	}
	for _, tg := range rep.Targets {
		if strings.Contains(tg.Note, "not") && strings.Contains(tg.Note, "measured") {
			t.Errorf("target %q: %s", tg.Name, tg.Note)
		}
		if strings.HasSuffix(tg.Name, "throughput") && !strings.Contains(tg.Note, "per round ") {
			t.Errorf("target %q: note %q lacks the per-round shares", tg.Name, tg.Note)
		}
	}
	for _, step := range []string{"[1/", "pop3-list", "conns"} {
		if !strings.Contains(progress.String(), step) {
			t.Errorf("progress lacks %q:\n%s", step, progress.String())
		}
	}
	// The run's directory is gone (no Keep) and nothing else was left.
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left behind in the temp dir: %v", left)
	}

	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"machine", "params", "results", "targets"} {
		if back[k] == nil {
			t.Errorf("results JSON lacks %q", k)
		}
	}
	var out bytes.Buffer
	rep.Print(&out)
	if !strings.Contains(out.String(), "targets met") || !strings.Contains(out.String(), "in 2 alternating rounds") {
		t.Errorf("printed report:\n%s", out.String())
	}
	t.Logf("report:\n%s", out.String())
}

func TestRunServerFailsToStart(t *testing.T) {
	// A "binary" that exits at once: user add fails, Run reports it.
	fake := filepath.Join(t.TempDir(), "buzon")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho broken >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), Options{Buzon: fake, Quick: true, TempDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("Run with a failing binary: %v", err)
	}
}

func TestRunServeExits(t *testing.T) {
	// Accounts are made, then serve exits at once: Run says so with its
	// output.
	fake := filepath.Join(t.TempDir(), "buzon")
	script := "#!/bin/sh\nif [ \"$1\" = serve ]; then echo 'listen tcp: address in use' >&2; exit 1; fi\ncat >/dev/null\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), Options{Buzon: fake, Quick: true, TempDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "address in use") {
		t.Fatalf("Run with a serve that exits: %v", err)
	}
}
