package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Table writes rs as a table for people: one row per result with rates,
// latency percentiles, errors and the server's RSS before and at peak.
func Table(w io.Writer, rs []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "name\tops\tops/s\tMB/s\tp50\tp90\tp99\tmax\terrors\tRSS before/peak MiB\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			r.Name, r.Ops, r.OpsPerSec, r.MBPerSec,
			fmtDur(r.Latency.P50), fmtDur(r.Latency.P90), fmtDur(r.Latency.P99), fmtDur(r.Latency.Max),
			fmtErrors(r.Errors), fmtMem(r.Server))
	}
	_ = tw.Flush()
}

// WriteJSON writes rs as an indented JSON array.
func WriteJSON(w io.Writer, rs []Result) error {
	if rs == nil {
		rs = []Result{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rs); err != nil {
		return fmt.Errorf("write results as JSON: %w", err)
	}
	return nil
}

// fmtDur keeps three significant figures: 812µs, 12.3ms, 1.25s.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// fmtErrors gives "0" or the kinds by count, e.g. "550:3 eof:1".
func fmtErrors(errs map[string]int64) string {
	if len(errs) == 0 {
		return "0"
	}
	kinds := make([]string, 0, len(errs))
	for k := range errs {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s:%d", k, errs[k])
	}
	return strings.Join(parts, " ")
}

func fmtMem(m *Memory) string {
	if m == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f/%.1f", float64(m.BeforeKiB)/1024, float64(m.PeakKiB)/1024)
}
