package config

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Entry is one key of the effective configuration, formatted for display.
type Entry struct {
	Key    string
	Value  string
	Source Source
}

// Masked replaces secrets in `config print`.
const Masked = "********"

// Entries returns every key with its effective value (secrets masked) and
// its source, in documentation order.
func Entries(c *Config, m *Meta) []Entry {
	out := make([]Entry, 0, len(keys))
	for _, k := range keys {
		src := FromDefault
		if m != nil && m.Sources[k.name] != "" {
			src = m.Sources[k.name]
		}
		out = append(out, Entry{Key: k.name, Value: c.format(k.name), Source: src})
	}
	return out
}

// Print writes Entries as an aligned table.
func Print(w io.Writer, c *Config, m *Meta) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVALUE\tSOURCE")
	for _, e := range Entries(c, m) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Key, e.Value, e.Source)
	}
	return tw.Flush()
}

func (c *Config) format(key string) string {
	switch key {
	case "hostname":
		return c.Hostname
	case "domains":
		return fmtList(c.Domains)
	case "aliases":
		names := make([]string, 0, len(c.Aliases))
		for k := range c.Aliases {
			names = append(names, k)
		}
		sort.Strings(names)
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = n + ": " + fmtList(c.Aliases[n])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case "data_dir":
		return c.DataDir
	case "shutdown_grace":
		return fmtDur(c.ShutdownGrace)
	case "smtp.listen":
		return fmtList(c.SMTP.Listen)
	case "smtp.submission_listen":
		return fmtList(c.SMTP.SubmissionListen)
	case "smtp.tls_listen":
		return fmtList(c.SMTP.TLSListen)
	case "smtp.max_message_bytes":
		return strconv.FormatInt(c.SMTP.MaxMessageBytes, 10)
	case "smtp.max_recipients":
		return strconv.Itoa(c.SMTP.MaxRecipients)
	case "smtp.max_line_length":
		return strconv.Itoa(c.SMTP.MaxLineLength)
	case "smtp.min_free_bytes":
		return strconv.FormatInt(c.SMTP.MinFreeBytes, 10)
	case "pop3.listen":
		return fmtList(c.POP3.Listen)
	case "pop3.tls_listen":
		return fmtList(c.POP3.TLSListen)
	case "mgmt.listen":
		return fmtList(c.MGMT.Listen)
	case "tls.cert_file":
		return c.TLS.CertFile
	case "tls.key_file":
		return c.TLS.KeyFile
	case "auth.allow_insecure":
		return strconv.FormatBool(c.Auth.AllowInsecure)
	case "auth.trust_loopback":
		return strconv.FormatBool(c.Auth.TrustLoopback)
	case "limits.max_connections":
		return strconv.Itoa(c.Limits.MaxConnections)
	case "limits.max_connections_per_ip":
		return strconv.Itoa(c.Limits.MaxConnectionsPerIP)
	case "limits.max_users":
		return strconv.Itoa(c.Limits.MaxUsers)
	case "limits.idle_timeout":
		return fmtDur(c.Limits.IdleTimeout)
	case "limits.login_timeout":
		return fmtDur(c.Limits.LoginTimeout)
	case "transform.command":
		q := make([]string, len(c.Transform.Command))
		for i, a := range c.Transform.Command {
			q[i] = strconv.Quote(a)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case "transform.enabled":
		return strconv.FormatBool(c.Transform.Enabled)
	case "transform.timeout":
		return fmtDur(c.Transform.Timeout)
	case "transform.max_concurrent":
		return strconv.Itoa(c.Transform.MaxConcurrent)
	case "log.level":
		return c.Log.Level
	case "log.format":
		return c.Log.Format
	case "log.file":
		return c.Log.File
	case "admin.password":
		if c.Admin.Password == "" {
			return ""
		}
		return Masked
	}
	return ""
}

func fmtList(l []string) string { return "[" + strings.Join(l, ", ") + "]" }

func fmtDur(d time.Duration) string {
	s := d.String()
	// 10m0s reads better as 10m.
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
