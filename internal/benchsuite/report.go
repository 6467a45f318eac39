package benchsuite

import (
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/buzon-mail/buzon/internal/loadgen"
)

// Report is everything one suite run measured; its JSON form is
// bench/results.json.
type Report struct {
	Machine Machine          `json:"machine"`
	Params  Params           `json:"params"`
	Results []loadgen.Result `json:"results"`
	// IdleRSSKiB is the fresh server's resident memory before any load.
	IdleRSSKiB int64       `json:"idle_rss_kib"`
	Targets    []Target    `json:"targets"`
	Reference  []Reference `json:"reference"`
	// Failures are scenarios that could not run at all (a row with
	// counted protocol errors is not a failure).
	Failures []string `json:"failures,omitempty"`
	// Notes are warnings about the run (a low file-descriptor limit).
	Notes []string `json:"notes,omitempty"`
	// DataDir is kept only with Options.Keep.
	DataDir string `json:"data_dir,omitempty"`

	rows map[string]loadgen.Result // by role, for targets and references
}

// Machine says where the figures were taken.
type Machine struct {
	CPUs      int    `json:"cpus"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	Date      string `json:"date"`
	Commit    string `json:"commit,omitempty"`
	// FS is the file system type of the data directory (ext4, tmpfs…):
	// the disk scenarios measure it.
	FS string `json:"fs,omitempty"`
}

func machine(dataDir string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Date: time.Now().UTC().Format(time.RFC3339)}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
		if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(out) > 0 {
			m.Commit += "-dirty"
		}
	}
	if m.Commit == "" {
		// Outside a checkout: the revision this binary was built from.
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					m.Commit = s.Value
				}
			}
		}
	}
	m.FS = fsType(dataDir)
	return m
}

// fsType names the common file system types by statfs magic number.
func fsType(dir string) string {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return ""
	}
	switch uint32(st.Type) {
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	}
	return fmt.Sprintf("0x%x", uint32(st.Type))
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("bench report: %w", err)
	}
	return nil
}

// Print writes the human report: machine and parameters, the scenario
// table, the idle RSS, the targets and the reference figures.
func (r *Report) Print(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "buzon bench: %s, %d CPUs, Linux %s, %s, commit %s, data dir on %s\n\n",
		m.Date, m.CPUs, m.Kernel, m.GoVersion, orDash(m.Commit), orDash(m.FS))
	r.Params.Print(w)
	fmt.Fprintln(w)
	loadgen.Table(w, r.Results)
	fmt.Fprintf(w, "\nidle server RSS (fresh start, no connection): %.1f MiB\n\n", float64(r.IdleRSSKiB)/1024)

	fmt.Fprintln(w, "targets (issue 6):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  target\tvalue\tgoal\tmet\tnote")
	met := 0
	for _, t := range r.Targets {
		ok := "MISSED"
		if t.Met {
			ok, met = "yes", met+1
		}
		fmt.Fprintf(tw, "  %s\t%s %s\t%s %s %s\t%s\t%s\n", t.Name, num(t.Value), t.Unit, t.Cmp, num(t.Limit), t.Unit, ok, t.Note)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "  %d of %d targets met\n\n", met, len(r.Targets))

	fmt.Fprintln(w, "reference: Postfix 3.7 + Dovecot 2.3 as quoted in issue 6 (2 cores, loopback, 5,000 x 4 KiB, medians):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  figure\treference\tbuzon (this run)\tbetter\tnote")
	for _, ref := range r.Reference {
		fmt.Fprintf(tw, "  %s\t%s %s\t%s %s\t%s\t%s\n", ref.Name, num(ref.Value), ref.Unit, num(ref.Buzon), ref.Unit, ref.Better, ref.Note)
	}
	_ = tw.Flush()

	for _, n := range r.Notes {
		fmt.Fprintf(w, "\nnote: %s", n)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "\nFAILED: %s", f)
	}
	if len(r.Notes)+len(r.Failures) > 0 {
		fmt.Fprintln(w)
	}
	if r.DataDir != "" {
		fmt.Fprintf(w, "\ndata directory kept: %s\n", r.DataDir)
	}
}

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100 || v <= -100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10 || v <= -10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// sizeLabel writes octet counts the way the issue does: 4096 as 4KiB,
// 25000000 as 25MB.
func sizeLabel(n int) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n%(1<<10) == 0 && n < 1<<20:
		return fmt.Sprintf("%dKiB", n>>10)
	case n%1_000_000 == 0:
		return fmt.Sprintf("%dMB", n/1_000_000)
	case n%1000 == 0:
		return fmt.Sprintf("%dkB", n/1000)
	}
	return fmt.Sprintf("%dB", n)
}
