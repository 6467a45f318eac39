package benchsuite

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/buzon-mail/buzon/internal/loadgen"
)

// Roles name the rows the targets read, independent of their labels.
const (
	roleDisk      = "disk"
	roleSMTP      = "smtp-target" // the SMTPTargetConns row
	rolePOP3      = "pop3"
	rolePOP3Pipe  = "pop3-pipelined"
	roleLargeSMTP = "large-smtp"
	roleLargePOP3 = "large-pop3"
	roleList      = "pop3-list"
	roleConns     = "conns"
)

// Target is one goal of issue 6 item 4 and whether this run met it.
type Target struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Cmp and Limit state the goal: Value Cmp Limit (">=", ">" or "<").
	Cmp   string  `json:"cmp"`
	Limit float64 `json:"limit"`
	Met   bool    `json:"met"`
	Note  string  `json:"note,omitempty"`
}

// Fixed goals of issue 6 item 4.
const (
	smtpDiskShare    = 0.8                   // smtp msgs/s against the disk's durable writes/s
	smtpP99Limit     = 50 * time.Millisecond // smtp transaction latency
	largeGrowthMiB   = 8.0                   // server RSS growth for the large message
	pop3MsgsPerSec   = 20_000.0
	largeRetrMBPerS  = 500.0
	listSessionLimit = 150 * time.Millisecond
	rssPerConnKiB    = 25.0
	idleRSSMiB       = 30.0
)

// evaluate judges the rows (by role) and the fresh server's idle RSS
// against the targets. A missing row gives an unmet target saying so.
func evaluate(rows map[string]loadgen.Result, idleKiB int64, p Params) []Target {
	var ts []Target
	add := func(name, unit, cmp string, limit float64, role string, value func(loadgen.Result) (float64, string, bool)) {
		t := Target{Name: name, Unit: unit, Cmp: cmp, Limit: round(limit)}
		r, ok := rows[role]
		if !ok {
			t.Note = "not measured"
			ts = append(ts, t)
			return
		}
		v, note, ok := value(r)
		if !ok {
			t.Note = note
			ts = append(ts, t)
			return
		}
		t.Value, t.Note, t.Met = round(v), note, compare(v, cmp, limit)
		ts = append(ts, t)
	}

	smtpName := fmt.Sprintf("smtp c=%d throughput", p.SMTPTargetConns)
	if d, ok := rows[roleDisk]; ok && d.OpsPerSec > 0 {
		limit := smtpDiskShare * d.OpsPerSec
		add(smtpName, "msg/s", ">=", limit, roleSMTP, func(r loadgen.Result) (float64, string, bool) {
			note := fmt.Sprintf("%.0f%% of the disk's %.0f durable writes/s", 100*r.OpsPerSec/d.OpsPerSec, d.OpsPerSec)
			if per := roundShares(r, d); per != "" {
				note += " over all rounds; per round " + per
			}
			return r.OpsPerSec, note + "; every message fsynced before its 250", true
		})
	} else {
		ts = append(ts, Target{Name: smtpName, Unit: "msg/s", Cmp: ">=", Note: "disk limit not measured"})
	}
	add(fmt.Sprintf("smtp c=%d p99 latency", p.SMTPTargetConns), "ms", "<", ms(smtpP99Limit), roleSMTP,
		func(r loadgen.Result) (float64, string, bool) {
			note := "disk-bound: one fsync of file and directory per message"
			// The disk loop's own p99 in the same minutes tells a slow
			// disk from a slow server.
			if d, ok := rows[roleDisk]; ok && d.Latency.P99 > 0 {
				note += fmt.Sprintf("; the disk loop's own p99 %.1f ms", ms(d.Latency.P99))
			}
			return ms(r.Latency.P99), note, true
		})
	add("large message: server RSS growth receiving", "MiB", "<", largeGrowthMiB, roleLargeSMTP, growth)
	add("large message: server RSS growth serving", "MiB", "<", largeGrowthMiB, roleLargePOP3, growth)

	// pop3 throughput: the better of the plain and the pipelined row.
	pop3Name := fmt.Sprintf("pop3 RETR %d x %d msgs, total", p.POP3Users, p.POP3Messages)
	best, bestRole := loadgen.Result{}, ""
	for _, role := range []string{rolePOP3, rolePOP3Pipe} {
		if r, ok := rows[role]; ok && (bestRole == "" || r.OpsPerSec > best.OpsPerSec) {
			best, bestRole = r, role
		}
	}
	if bestRole != "" {
		add(pop3Name, "msg/s", ">=", pop3MsgsPerSec, bestRole, func(r loadgen.Result) (float64, string, bool) {
			return r.OpsPerSec, fmt.Sprintf("best of the two pop3 rows: %s (%.1f MB/s)", r.Name, r.MBPerSec), true
		})
	} else {
		add(pop3Name, "msg/s", ">=", pop3MsgsPerSec, rolePOP3, nil)
	}
	add("large message RETR", "MB/s", ">", largeRetrMBPerS, roleLargePOP3, func(r loadgen.Result) (float64, string, bool) {
		return r.MBPerSec, "loopback, one client", true
	})
	add(fmt.Sprintf("pop3-list %d msgs: session p50", p.ListMessages), "ms", "<", ms(listSessionLimit), roleList,
		func(r loadgen.Result) (float64, string, bool) {
			note := "USER+PASS+STAT+LIST+UIDL+QUIT, no body read"
			login, ok1 := number(r.Extra["login_p50_ns"])
			list, ok2 := number(r.Extra["list_p50_ns"])
			if ok1 && ok2 {
				note += fmt.Sprintf(" (p50 login with listing %.1f ms, LIST+UIDL %.1f ms)", login/1e6, list/1e6)
			}
			// The first login pays bcrypt; the server remembers the
			// success, as it does for a client polling with one password.
			if first, ok := number(r.Extra["first_session_ns"]); ok {
				note += fmt.Sprintf("; first session %.1f ms, with bcrypt", first/1e6)
			}
			return ms(r.Latency.P50), note, true
		})
	add("conns: connections greeted", "conns", ">=", float64(p.Conns), roleConns, func(r loadgen.Result) (float64, string, bool) {
		return float64(r.Ops), "", true
	})
	add("conns: server RSS per connection", "KiB", "<", rssPerConnKiB, roleConns, func(r loadgen.Result) (float64, string, bool) {
		v, ok := number(r.Extra["rss_per_conn_kib"])
		if !ok {
			return 0, "rss_per_conn_kib not reported", false
		}
		return v, "", true
	})
	t := Target{Name: "idle server RSS", Unit: "MiB", Cmp: "<", Limit: idleRSSMiB}
	if idleKiB > 0 {
		v := float64(idleKiB) / 1024
		t.Value, t.Met, t.Note = round(v), compare(v, "<", idleRSSMiB), "fresh server, before any scenario"
	} else {
		t.Note = "not measured"
	}
	return append(ts, t)
}

// roundShares gives smtp's rate as a share of the disk's for each pair
// of alternating rounds, e.g. "41/38/52%", or "" when the rows were not
// measured in the same number of rounds: the spread tells how much the
// disk drifted during the run.
func roundShares(smtp, disk loadgen.Result) string {
	s, ok1 := numbers(smtp.Extra["round_ops_per_sec"])
	d, ok2 := numbers(disk.Extra["round_ops_per_sec"])
	if !ok1 || !ok2 || len(s) != len(d) || len(s) < 2 {
		return ""
	}
	parts := make([]string, len(s))
	for i := range s {
		if d[i] <= 0 {
			return ""
		}
		parts[i] = fmt.Sprintf("%.0f", 100*s[i]/d[i])
	}
	return strings.Join(parts, "/") + "%"
}

// growth is the server's RSS peak minus its RSS before the row, in MiB.
func growth(r loadgen.Result) (float64, string, bool) {
	if r.Server == nil || r.Server.PeakKiB == 0 {
		return 0, "server memory not sampled", false
	}
	g := float64(r.Server.PeakKiB-r.Server.BeforeKiB) / 1024
	return g, fmt.Sprintf("RSS %.1f MiB before, %.1f MiB peak", float64(r.Server.BeforeKiB)/1024, float64(r.Server.PeakKiB)/1024), true
}

func compare(v float64, cmp string, limit float64) bool {
	switch cmp {
	case ">=":
		return v >= limit
	case ">":
		return v > limit
	case "<":
		return v < limit
	}
	return false
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// round keeps three decimals: enough for every unit used, and stable JSON.
func round(v float64) float64 { return math.Round(v*1000) / 1000 }

// number reads a figure of Result.Extra, which holds Go numbers in a fresh
// Result and float64 after a JSON round trip.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case time.Duration:
		return float64(x), true
	}
	return 0, false
}

// numbers reads a list of figures of Result.Extra: []float64 in a fresh
// Result, []any of float64 after a JSON round trip.
func numbers(v any) ([]float64, bool) {
	switch x := v.(type) {
	case []float64:
		return x, true
	case []any:
		out := make([]float64, len(x))
		for i, e := range x {
			f, ok := number(e)
			if !ok {
				return nil, false
			}
			out[i] = f
		}
		return out, true
	}
	return nil, false
}

// Reference is a figure of Postfix 3.7 + Dovecot 2.3 quoted in issue 6,
// measured on the same kind of machine (2 cores, loopback, 5,000 x 4 KiB,
// medians), shown beside the matching figure of this run.
type Reference struct {
	Name  string  `json:"name"`
	Unit  string  `json:"unit"`
	Value float64 `json:"reference"`
	// Buzon is this run's figure (0 when not measured); Better says which
	// way is better: "higher" or "lower".
	Buzon  float64 `json:"buzon"`
	Better string  `json:"better"`
	Note   string  `json:"note,omitempty"`
}

// references pairs the quoted Postfix/Dovecot figures with this run's.
func references(rows map[string]loadgen.Result) []Reference {
	pop3 := rows[rolePOP3]
	if r, ok := rows[rolePOP3Pipe]; ok && r.OpsPerSec > pop3.OpsPerSec {
		pop3 = r
	}
	list := rows[roleList]
	listMS, listNote := ms(list.Latency.P50), "buzon: whole session p50, login included"
	if v, ok := number(list.Extra["list_p50_ns"]); ok {
		listMS, listNote = v/float64(time.Millisecond), "buzon: LIST+UIDL part of the session, p50"
	}
	return []Reference{
		{Name: "SMTP, 20 clients: delivered into Maildir (Postfix 3.7)", Unit: "msg/s", Value: 313,
			Buzon: round(rows[roleSMTP].OpsPerSec), Better: "higher"},
		{Name: "POP3 RETR, 4 clients (Dovecot 2.3)", Unit: "msg/s", Value: 11_700,
			Buzon: round(pop3.OpsPerSec), Better: "higher"},
		{Name: "POP3 RETR, 4 clients (Dovecot 2.3)", Unit: "MB/s", Value: 52.8,
			Buzon: round(pop3.MBPerSec), Better: "higher"},
		{Name: "STAT+LIST+UIDL on 50,000 msgs, warm (Dovecot 2.3)", Unit: "ms", Value: 230,
			Buzon: round(listMS), Better: "lower", Note: listNote},
	}
}
