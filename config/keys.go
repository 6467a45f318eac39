package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// key is one configuration key: its dotted name, default, and the function
// that validates a raw value (from YAML, env, flag or default) into Config.
type key struct {
	name string
	def  any
	set  func(c *Config, raw any, src Source) error
}

// keys lists every key of SPEC §3 in documentation order.
var keys = []key{
	{"hostname", "", func(c *Config, raw any, _ Source) (err error) { c.Hostname, err = hostname(raw); return }},
	{"domains", []string{"localhost"}, func(c *Config, raw any, _ Source) (err error) { c.Domains, err = domains(raw); return }},
	{"aliases", map[string]any{"postmaster": "admin", "abuse": "admin"}, func(c *Config, raw any, src Source) (err error) {
		c.Aliases, err = aliases(raw, src)
		return
	}},
	{"data_dir", "./var", func(c *Config, raw any, _ Source) error {
		s, err := str(raw)
		if err != nil {
			return err
		}
		if strings.TrimSpace(s) == "" {
			return errors.New("must not be empty")
		}
		if strings.ContainsRune(s, 0) {
			return errors.New("must not contain NUL")
		}
		c.DataDir = filepath.Clean(s)
		return nil
	}},
	{"shutdown_grace", "30s", func(c *Config, raw any, _ Source) (err error) { c.ShutdownGrace, err = duration(raw, true); return }},

	{"smtp.listen", []string{"127.0.0.1:2525"}, func(c *Config, raw any, _ Source) (err error) { c.SMTP.Listen, err = listen(raw); return }},
	{"smtp.submission_listen", []string{}, func(c *Config, raw any, _ Source) (err error) { c.SMTP.SubmissionListen, err = listen(raw); return }},
	{"smtp.tls_listen", []string{}, func(c *Config, raw any, _ Source) (err error) { c.SMTP.TLSListen, err = listen(raw); return }},
	{"smtp.max_message_bytes", 26214400, func(c *Config, raw any, _ Source) (err error) { c.SMTP.MaxMessageBytes, err = positive(raw, 1); return }},
	{"smtp.max_recipients", 100, func(c *Config, raw any, _ Source) error {
		n, err := positive(raw, 1)
		c.SMTP.MaxRecipients = int(n)
		return err
	}},
	{"smtp.max_line_length", 65536, func(c *Config, raw any, _ Source) error {
		// RFC 5321 §4.5.3.1.6: a text line of 1000 octets must be accepted.
		n, err := positive(raw, 1000)
		c.SMTP.MaxLineLength = int(n)
		return err
	}},
	{"smtp.min_free_bytes", 104857600, func(c *Config, raw any, _ Source) (err error) { c.SMTP.MinFreeBytes, err = positive(raw, 0); return }},

	{"pop3.listen", []string{"127.0.0.1:1110"}, func(c *Config, raw any, _ Source) (err error) { c.POP3.Listen, err = listen(raw); return }},
	{"pop3.tls_listen", []string{}, func(c *Config, raw any, _ Source) (err error) { c.POP3.TLSListen, err = listen(raw); return }},
	{"mgmt.listen", []string{"127.0.0.1:6000"}, func(c *Config, raw any, _ Source) (err error) { c.MGMT.Listen, err = listen(raw); return }},

	{"tls.cert_file", "", func(c *Config, raw any, _ Source) (err error) { c.TLS.CertFile, err = str(raw); return }},
	{"tls.key_file", "", func(c *Config, raw any, _ Source) (err error) { c.TLS.KeyFile, err = str(raw); return }},

	{"auth.allow_insecure", false, func(c *Config, raw any, _ Source) (err error) { c.Auth.AllowInsecure, err = boolean(raw); return }},
	{"auth.trust_loopback", true, func(c *Config, raw any, _ Source) (err error) { c.Auth.TrustLoopback, err = boolean(raw); return }},

	{"limits.max_connections", 1000, func(c *Config, raw any, _ Source) error {
		n, err := positive(raw, 1)
		if err == nil && n > 1000000 {
			err = errors.New("must be at most 1000000")
		}
		c.Limits.MaxConnections = int(n)
		return err
	}},
	{"limits.max_connections_per_ip", 20, func(c *Config, raw any, _ Source) error {
		n, err := positive(raw, 1)
		c.Limits.MaxConnectionsPerIP = int(n)
		return err
	}},
	{"limits.max_users", 10000, func(c *Config, raw any, _ Source) error {
		n, err := positive(raw, 1)
		c.Limits.MaxUsers = int(n)
		return err
	}},
	{"limits.idle_timeout", "10m", func(c *Config, raw any, _ Source) (err error) {
		c.Limits.IdleTimeout, err = duration(raw, false)
		return
	}},
	{"limits.login_timeout", "60s", func(c *Config, raw any, _ Source) (err error) {
		c.Limits.LoginTimeout, err = duration(raw, false)
		return
	}},

	{"transform.command", []string{}, func(c *Config, raw any, _ Source) (err error) { c.Transform.Command, err = command(raw); return }},
	{"transform.enabled", false, func(c *Config, raw any, _ Source) (err error) { c.Transform.Enabled, err = boolean(raw); return }},
	{"transform.timeout", "30s", func(c *Config, raw any, _ Source) (err error) {
		c.Transform.Timeout, err = duration(raw, false)
		return
	}},
	{"transform.max_concurrent", 4, func(c *Config, raw any, _ Source) error {
		n, err := positive(raw, 1)
		c.Transform.MaxConcurrent = int(n)
		return err
	}},

	{"log.level", "info", func(c *Config, raw any, _ Source) (err error) {
		c.Log.Level, err = oneOf(raw, "debug", "info", "warn", "error")
		return
	}},
	{"log.format", "text", func(c *Config, raw any, _ Source) (err error) { c.Log.Format, err = oneOf(raw, "text", "json"); return }},
	{"log.file", "", func(c *Config, raw any, _ Source) error {
		s, err := str(raw)
		if err != nil {
			return err
		}
		if strings.ContainsRune(s, 0) {
			return errors.New("must not contain NUL")
		}
		// The file is created at start; a directory in its place would
		// only fail there.
		if fi, err := os.Stat(s); s != "" && err == nil && fi.IsDir() {
			return fmt.Errorf("%s is a directory", s)
		}
		c.Log.File = s
		return nil
	}},

	{"admin.password", "", func(c *Config, raw any, _ Source) error {
		s, err := str(raw)
		if err != nil {
			return err
		}
		if s != "" {
			if err := validPassword(s); err != nil {
				return err
			}
		}
		c.Admin.Password = s
		return nil
	}},
}

var (
	keyIndex = map[string]*key{}
	sections = map[string]bool{}
)

func init() {
	for i := range keys {
		k := &keys[i]
		keyIndex[k.name] = k
		if j := strings.IndexByte(k.name, '.'); j > 0 {
			sections[k.name[:j]] = true
		}
	}
}

// Keys returns every configuration key in documentation order.
func Keys() []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.name
	}
	return out
}

// check validates rules that span several keys.
func (c *Config) check() error {
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		if c.TLS.CertFile == "" {
			return errors.New("tls.cert_file: required when tls.key_file is set")
		}
		return errors.New("tls.key_file: required when tls.cert_file is set")
	}
	if c.TLS.Enabled() {
		if _, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile); err != nil {
			return fmt.Errorf("tls.cert_file: cannot load the certificate and key: %w", err)
		}
	}
	if !c.TLS.Enabled() {
		if len(c.SMTP.TLSListen) > 0 {
			return errors.New("smtp.tls_listen: requires tls.cert_file and tls.key_file")
		}
		if len(c.POP3.TLSListen) > 0 {
			return errors.New("pop3.tls_listen: requires tls.cert_file and tls.key_file")
		}
	}
	seen := map[string]string{}
	for _, l := range c.Listeners() {
		for _, a := range l.Addrs {
			if _, port, _ := net.SplitHostPort(a); port == "0" {
				continue // port 0 picks a free port each time
			}
			if other, ok := seen[a]; ok {
				return fmt.Errorf("%s: %s is already used by %s", l.Key, a, other)
			}
			seen[a] = l.Key
		}
	}
	if c.Transform.Enabled && len(c.Transform.Command) == 0 {
		return errors.New("transform.enabled: requires transform.command")
	}
	return nil
}

// Listener is one configured listen key.
type Listener struct {
	Key   string // e.g. "smtp.tls_listen"
	Addrs []string
}

// Listeners lists every listen key with its addresses, in a fixed order.
func (c *Config) Listeners() []Listener {
	return []Listener{
		{"smtp.listen", c.SMTP.Listen},
		{"smtp.submission_listen", c.SMTP.SubmissionListen},
		{"smtp.tls_listen", c.SMTP.TLSListen},
		{"pop3.listen", c.POP3.Listen},
		{"pop3.tls_listen", c.POP3.TLSListen},
		{"mgmt.listen", c.MGMT.Listen},
	}
}

// --- value parsers; errors say what was expected, the caller adds the key.

func str(raw any) (string, error) {
	switch x := raw.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case []string:
		if len(x) == 1 {
			return x[0], nil
		}
	}
	return "", errors.New("must be a string")
}

func boolean(raw any) (bool, error) {
	switch x := raw.(type) {
	case bool:
		return x, nil
	case string:
		if b, err := strconv.ParseBool(strings.TrimSpace(x)); err == nil {
			return b, nil
		}
	}
	return false, errors.New("must be true or false")
}

// positive parses an integer >= min; min 0 means non-negative.
func positive(raw any, min int64) (int64, error) {
	msg := "must be a positive integer"
	if min == 0 {
		msg = "must be a non-negative integer"
	} else if min > 1 {
		msg = fmt.Sprintf("must be an integer of at least %d", min)
	}
	var n int64
	switch x := raw.(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	case uint64:
		if x > math.MaxInt64 {
			return 0, errors.New(msg)
		}
		n = int64(x)
	case float64:
		if x != math.Trunc(x) || x > math.MaxInt64/2 || x < math.MinInt64/2 {
			return 0, errors.New(msg)
		}
		n = int64(x)
	case string:
		v, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			return 0, errors.New(msg)
		}
		n = v
	default:
		return 0, errors.New(msg)
	}
	if n < min || n > math.MaxInt32*int64(1<<20) {
		return 0, errors.New(msg)
	}
	return n, nil
}

// duration parses "30s", "5m"; zero allowed only when zeroOK.
func duration(raw any, zeroOK bool) (time.Duration, error) {
	msg := "must be a positive duration like 30s or 5m"
	if zeroOK {
		msg = "must be a duration like 30s or 5m"
	}
	var d time.Duration
	switch x := raw.(type) {
	case string:
		v, err := time.ParseDuration(strings.TrimSpace(x))
		if err != nil {
			return 0, errors.New(msg)
		}
		d = v
	case int:
		if x != 0 {
			return 0, errors.New(msg + " (a unit is required)")
		}
	default:
		return 0, errors.New(msg)
	}
	if d < 0 || (d == 0 && !zeroOK) {
		return 0, errors.New(msg)
	}
	return d, nil
}

func oneOf(raw any, allowed ...string) (string, error) {
	s, err := str(raw)
	if err == nil {
		s = strings.ToLower(strings.TrimSpace(s))
		for _, a := range allowed {
			if s == a {
				return s, nil
			}
		}
	}
	return "", fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
}

// list accepts a string (split on commas and blanks), a list of strings, or
// nothing.
func list(raw any) ([]string, error) {
	var in []string
	switch x := raw.(type) {
	case nil:
	case string:
		in = strings.FieldsFunc(x, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	case []string:
		in = x
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, errors.New("must be a string or a list of strings")
			}
			in = append(in, s)
		}
	default:
		return nil, errors.New("must be a string or a list of strings")
	}
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

func listen(raw any) ([]string, error) {
	addrs, err := list(raw)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if err := validAddr(a); err != nil {
			return nil, fmt.Errorf("%q: %w", a, err)
		}
	}
	return addrs, nil
}

func validAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return errors.New("must be host:port, IPv6 in brackets like [::1]:2525")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 || port == "" {
		return errors.New("port must be a number from 0 to 65535")
	}
	if host == "" || net.ParseIP(host) != nil {
		return nil
	}
	if strings.Contains(host, "%") || !validDomain(host) {
		return errors.New("host must be an IP address or a host name")
	}
	return nil
}

var labelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func validDomain(d string) bool {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	if d == "" || len(d) > 253 {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if !labelRE.MatchString(l) {
			return false
		}
	}
	return true
}

func hostname(raw any) (string, error) {
	s, err := str(raw)
	if err != nil {
		return "", err
	}
	s = strings.TrimSpace(s)
	if !validDomain(s) {
		return "", errors.New("must be a host name (letters, digits, hyphens and dots)")
	}
	return strings.ToLower(strings.TrimSuffix(s, ".")), nil
}

func domains(raw any) ([]string, error) {
	ds, err := list(raw)
	if err != nil {
		return nil, err
	}
	if len(ds) == 0 {
		return nil, errors.New("at least one domain is required")
	}
	out := make([]string, 0, len(ds))
	seen := map[string]bool{}
	for _, d := range ds {
		if !validDomain(d) {
			return nil, fmt.Errorf("%q is not a valid domain name", d)
		}
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out, nil
}

// userRE is SPEC §6's user name rule (after lower-casing).
var userRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$`)

func normalizeUser(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if !userRE.MatchString(s) || strings.Contains(s, "..") {
		return "", fmt.Errorf("%q is not a valid user name", s)
	}
	return s, nil
}

// localRE: an unquoted RFC 5321 local part, restricted to what a sane
// alias needs; ':' is excluded because it is the internal key delimiter.
var localRE = regexp.MustCompile(`^[a-z0-9!#$%&'*+/=?^_{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_{|}~-]+)*$`)

// aliases: a mapping local part → user or list of users. From the
// environment the form is "local=user1,user2 local2=user3" (entries separated
// by blanks or ';').
func aliases(raw any, src Source) (map[string][]string, error) {
	var m map[string]any
	switch x := raw.(type) {
	case nil:
		return map[string][]string{}, nil
	case string:
		m = map[string]any{}
		for _, e := range strings.FieldsFunc(x, func(r rune) bool { return r == ';' || r == ' ' || r == '\t' || r == '\n' }) {
			local, targets, ok := strings.Cut(e, "=")
			if !ok {
				return nil, fmt.Errorf("entry %q must be local=user[,user...]", e)
			}
			m[local] = targets
		}
	default:
		var ok bool
		if m, ok = asMap(raw); !ok {
			return nil, errors.New("must be a mapping of local part to user or list of users")
		}
	}
	out := make(map[string][]string, len(m))
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		local := strings.ToLower(strings.TrimSpace(k))
		if len(local) > 64 || !utf8.ValidString(local) || !localRE.MatchString(local) {
			return nil, fmt.Errorf("%q is not a valid local part", k)
		}
		if _, dup := out[local]; dup {
			return nil, fmt.Errorf("%q is listed twice", local)
		}
		targets, err := list(m[k])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", local, err)
		}
		if len(targets) == 0 {
			return nil, fmt.Errorf("%s: needs at least one user", local)
		}
		var norm []string
		seen := map[string]bool{}
		for _, t := range targets {
			u, err := normalizeUser(t)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", local, err)
			}
			if u == "postmaster" || u == "abuse" {
				return nil, fmt.Errorf("%s: %q is a reserved name, not a user", local, u)
			}
			if !seen[u] {
				seen[u] = true
				norm = append(norm, u)
			}
		}
		out[local] = norm
	}
	return out, nil
}

// command: a list of strings, or one string split like a shell would.
func command(raw any) ([]string, error) {
	switch x := raw.(type) {
	case nil:
		return nil, nil
	case string:
		argv, err := SplitCommand(x)
		if err != nil {
			return nil, fmt.Errorf("cannot split %q: %w", x, err)
		}
		return checkArgv(argv)
	case []string:
		return checkArgv(append([]string(nil), x...))
	case []any:
		argv := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, errors.New("must be a list of strings or one command line")
			}
			argv = append(argv, s)
		}
		return checkArgv(argv)
	}
	return nil, errors.New("must be a list of strings or one command line")
}

func checkArgv(argv []string) ([]string, error) {
	for _, a := range argv {
		if strings.ContainsRune(a, 0) {
			return nil, errors.New("must not contain NUL")
		}
	}
	if len(argv) > 0 && argv[0] == "" {
		return nil, errors.New("the program name must not be empty")
	}
	if len(argv) == 0 {
		return nil, nil
	}
	return argv, nil
}

// validPassword is SPEC §6's rule: 1 to 72 bytes, no spaces or control
// characters.
func validPassword(pw string) error {
	if len(pw) < 1 || len(pw) > 72 {
		return errors.New("must be 1 to 72 bytes")
	}
	for _, r := range pw {
		if r <= ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return errors.New("must not contain spaces or control characters")
		}
	}
	return nil
}
