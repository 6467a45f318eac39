package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/buzon-mail/buzon/internal/state"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// Source says where an effective value came from.
type Source string

const (
	FromDefault Source = "default"
	FromFile    Source = "file"
	FromEnv     Source = "env"
	FromFlag    Source = "flag"
	FromRuntime Source = "runtime" // data_dir/state.json, set through MGMT
)

// DefaultSearchPaths are tried in order when no --config is given.
var DefaultSearchPaths = []string{"buzon.yaml", "/etc/buzon/buzon.yaml"}

// EnvPrefix starts every environment variable buzon reads.
const EnvPrefix = "BUZON_"

// Options tell Load where to look.
type Options struct {
	// File is the --config value; when set it must exist.
	File string
	// SearchPaths replace DefaultSearchPaths when File is empty (nil: the
	// defaults; an empty non-nil slice: no file at all).
	SearchPaths []string
	// Flags, when set, is a flag set holding some of the flags of
	// FlagKeys; the ones the user changed win over everything else.
	Flags *pflag.FlagSet
	// Hostname returns the default hostname (nil: os.Hostname).
	Hostname func() (string, error)
	// NoRuntime skips data_dir/state.json.
	NoRuntime bool
}

// Meta describes a loaded configuration.
type Meta struct {
	// File is the configuration file read, "" when defaults alone ran.
	File string
	// Sources maps every key (dotted path, e.g. "smtp.listen") to the
	// origin of its effective value.
	Sources map[string]Source
	// Base holds the run-time-changeable values as configured, before
	// state.json was applied: the base of state.New and ApplyConfig.
	Base state.Values
}

// FlagKeys maps the `buzon serve` flag names to the keys they set.
var FlagKeys = map[string]string{
	"domain":      "domains",
	"smtp-listen": "smtp.listen",
	"pop3-listen": "pop3.listen",
	"mgmt-listen": "mgmt.listen",
	"log-file":    "log.file",
	"log-level":   "log.level",
	"transform":   "transform.command",
	"data-dir":    "data_dir",
}

// bare-port flags: a value that is only a port means 127.0.0.1:<port>.
var barePortFlags = map[string]bool{"smtp-listen": true, "mgmt-listen": true, "pop3-listen": true}

// EnvName is the environment variable of a key: BUZON_ + the key path in
// upper case with "_" between its parts (smtp.listen → BUZON_SMTP_LISTEN).
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// viper's own delimiter is ".", but alias local parts may contain dots.
const keyDelim = "::"

func vkey(key string) string { return strings.ReplaceAll(key, ".", keyDelim) }

// Load reads the configuration: defaults, then the file, then BUZON_
// environment variables, then changed flags, validates it, and overlays the
// run-time values of data_dir/state.json. Warnings are returned for values
// that are legal but unwise. Errors name the offending key.
func Load(opts Options) (*Config, *Meta, []string, error) {
	path, data, err := findFile(opts)
	if err != nil {
		return nil, nil, nil, err
	}
	return load(opts, path, data)
}

func findFile(opts Options) (string, []byte, error) {
	if opts.File != "" {
		data, err := readFile(opts.File)
		if err != nil {
			return "", nil, fmt.Errorf("config file: %w", err)
		}
		return opts.File, data, nil
	}
	paths := opts.SearchPaths
	if paths == nil {
		paths = DefaultSearchPaths
	}
	for _, p := range paths {
		data, err := readFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("config file: %w", err)
		}
		return p, data, nil
	}
	return "", nil, nil
}

// MaxFileSize bounds a configuration file: every key of a real one fits in a
// few kilobytes, and the YAML parser holds the whole document in memory.
const MaxFileSize = 1 << 20

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, MaxFileSize)
	}
	return data, nil
}

func load(opts Options, path string, data []byte) (*Config, *Meta, []string, error) {
	hostFn := opts.Hostname
	if hostFn == nil {
		hostFn = os.Hostname
	}
	defHost, err := hostFn()
	if err != nil || !validDomain(defHost) {
		defHost = "localhost" // an OS name that is no valid host name must not stop the start
	}

	v := viper.NewWithOptions(viper.KeyDelimiter(keyDelim))
	v.AllowEmptyEnv(true) // BUZON_SMTP_SUBMISSION_LISTEN= switches a listener off
	for _, k := range keys {
		def := k.def
		if k.name == "hostname" {
			def = defHost
		}
		v.SetDefault(vkey(k.name), def)
		if err := v.BindEnv(vkey(k.name), EnvName(k.name)); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", k.name, err)
		}
	}

	if path != "" {
		m, err := checkFile(data)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		if err := v.MergeConfigMap(m); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", path, err)
		}
	}

	flagOf := map[string]*pflag.Flag{} // key → changed flag
	if opts.Flags != nil {
		for name, key := range FlagKeys {
			f := opts.Flags.Lookup(name)
			if f == nil {
				continue
			}
			if err := v.BindPFlag(vkey(key), f); err != nil {
				return nil, nil, nil, fmt.Errorf("flag --%s: %w", name, err)
			}
			if f.Changed {
				flagOf[key] = f
			}
		}
	}

	cfg := &Config{}
	meta := &Meta{File: path, Sources: make(map[string]Source, len(keys))}
	for _, k := range keys {
		src := FromDefault
		raw := v.Get(vkey(k.name))
		if f, ok := flagOf[k.name]; ok {
			src = FromFlag
			if barePortFlags[f.Name] {
				raw = barePorts(raw)
			}
		} else if _, ok := os.LookupEnv(EnvName(k.name)); ok {
			src = FromEnv
		} else if path != "" && v.InConfig(vkey(k.name)) {
			src = FromFile
		}
		meta.Sources[k.name] = src
		if err := k.set(cfg, raw, src); err != nil {
			what := string(src)
			if src == FromEnv {
				what = EnvName(k.name)
			} else if src == FromFlag {
				what = "flag --" + flagOf[k.name].Name
			}
			return nil, nil, nil, fmt.Errorf("%s: %w (from %s)", k.name, err, what)
		}
	}
	if err := cfg.check(); err != nil {
		return nil, nil, nil, err
	}
	meta.Base = cfg.RuntimeValues()

	if !opts.NoRuntime {
		if err := applyRuntime(cfg, meta); err != nil {
			return nil, nil, nil, err
		}
	}
	return cfg, meta, append(cfg.warnings(), envWarnings(os.Environ())...), nil
}

// notConfig are BUZON_ variables of other tools (admin_monitor) that look
// like configuration keys.
var notConfig = map[string]bool{"BUZON_MGMT_ADDR": true, "BUZON_MGMT_PASSWORD": true}

// envWarnings reports BUZON_<SECTION>_* variables that set no key: most
// likely a typo that would otherwise be ignored silently.
func envWarnings(environ []string) []string {
	known := make(map[string]bool, len(keys))
	for _, k := range keys {
		known[EnvName(k.name)] = true
	}
	var w []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || known[name] || notConfig[name] {
			continue
		}
		rest := strings.ToLower(strings.TrimPrefix(name, EnvPrefix))
		if sec, _, ok := strings.Cut(rest, "_"); ok && sections[sec] {
			w = append(w, fmt.Sprintf("environment variable %s sets no configuration key (ignored)", name))
		}
	}
	sort.Strings(w)
	return w
}

// RuntimeValues are the values MGMT can change at run time.
func (c *Config) RuntimeValues() state.Values {
	return state.Values{
		MaxUsers:       c.Limits.MaxUsers,
		MaxConnections: c.Limits.MaxConnections,
		Transform:      c.Transform.Enabled,
	}
}

// StatePath is data_dir/state.json.
func (c *Config) StatePath() string { return filepath.Join(c.DataDir, "state.json") }

func applyRuntime(cfg *Config, meta *Meta) error {
	p := cfg.StatePath()
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	f, err := state.ReadFile(p)
	if err != nil {
		return fmt.Errorf("run-time values: %w", err)
	}
	if f.MaxUsers != nil {
		cfg.Limits.MaxUsers = *f.MaxUsers
		meta.Sources["limits.max_users"] = FromRuntime
	}
	if f.MaxConnections != nil {
		cfg.Limits.MaxConnections = *f.MaxConnections
		meta.Sources["limits.max_connections"] = FromRuntime
	}
	if f.Transform != nil {
		cfg.Transform.Enabled = *f.Transform
		meta.Sources["transform.enabled"] = FromRuntime
	}
	return nil
}

// barePorts turns flag values that are only a port into 127.0.0.1:<port>.
func barePorts(raw any) any {
	conv := func(s string) string {
		s = strings.TrimSpace(s)
		if s != "" && strings.Trim(s, "0123456789") == "" {
			return "127.0.0.1:" + s
		}
		return s
	}
	switch x := raw.(type) {
	case string:
		return conv(x)
	case []string:
		out := make([]string, len(x))
		for i, s := range x {
			out[i] = conv(s)
		}
		return out
	}
	return raw
}

// checkFile parses the YAML and rejects a file that is not a mapping and
// unknown keys at any depth, before viper sees it (viper would silently
// ignore them). A key present with no value (null) becomes "", so that
// "listen:" switches a listener off rather than falling back to the default.
func checkFile(data []byte) (map[string]any, error) {
	var top any
	if err := yaml.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	if top == nil {
		return map[string]any{}, nil // empty file
	}
	m, ok := asMap(top)
	if !ok {
		return nil, errors.New("the file must be a YAML mapping of keys")
	}
	if err := checkMap("", m); err != nil {
		return nil, err
	}
	return m, nil
}

func asMap(x any) (map[string]any, bool) {
	switch m := x.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[fmt.Sprint(k)] = v
		}
		return out, true
	}
	return nil, false
}

func checkMap(prefix string, m map[string]any) error {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		full := name
		if prefix != "" {
			full = prefix + "." + name
		}
		switch {
		case keyIndex[full] != nil:
			// A leaf; aliases is a leaf whose value is a map.
			if m[name] == nil {
				m[name] = ""
			}
			if sub, ok := asMap(m[name]); ok {
				if full != "aliases" {
					continue // the key's parser reports the type error
				}
				// viper folds keys to lower case: catch duplicates first.
				seen := map[string]bool{}
				for k, t := range sub {
					lk := strings.ToLower(strings.TrimSpace(k))
					if seen[lk] {
						return fmt.Errorf("aliases: %q is listed twice", lk)
					}
					seen[lk] = true
					if t == nil {
						sub[k] = ""
					}
				}
				m[name] = sub
			}
		case sections[full]:
			if m[name] == nil {
				m[name] = map[string]any{}
				continue
			}
			sub, ok := asMap(m[name])
			if !ok {
				return fmt.Errorf("%s: must be a mapping of keys", full)
			}
			if err := checkMap(full, sub); err != nil {
				return err
			}
			m[name] = sub
		default:
			return fmt.Errorf("%s: unknown key", full)
		}
	}
	return nil
}

// warnings: legal but below what the RFCs ask.
func (c *Config) warnings() []string {
	var w []string
	t := c.Limits.IdleTimeout
	if t < 5*time.Minute {
		w = append(w, fmt.Sprintf("limits.idle_timeout: %s is below the 5 minutes RFC 5321 §4.5.3.2 asks of SMTP servers", t))
	}
	if t < 10*time.Minute {
		w = append(w, fmt.Sprintf("limits.idle_timeout: %s is below the 10 minutes RFC 1939 §3 asks of POP3 servers", t))
	}
	return w
}
