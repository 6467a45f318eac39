package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/buzon-mail/buzon/mgmt/client"
)

// Exit statuses (SPEC §8).
const (
	exitOK    = 0 // +OK
	exitERR   = 1 // -ERR, a refused login included
	exitUsage = 2 // usage, connection, protocol and version errors
)

const (
	defaultAddr = "127.0.0.1:6000"
	dialTimeout = 10 * time.Second
	// replyTimeout bounds every exchange but TIMEOUT's, which lasts as long
	// as the pause it asks for.
	replyTimeout = 60 * time.Second
)

// mgmtCommand is a command admin_monitor knows, with its arguments.
type mgmtCommand struct {
	name       string
	args       string // synopsis of the arguments
	minA, maxA int
	help       string
}

var commands = []mgmtCommand{
	{"HISTORIC_CONNEC", "", 0, 0, "SMTP+POP3 connections since the counters began"},
	{"LIVE_CONNEC", "", 0, 0, "SMTP+POP3 connections open now"},
	{"BYTES_TRANS", "", 0, 0, "SMTP+POP3 bytes sent and received"},
	{"USERS", "", 0, 0, "user count and names"},
	{"STATUS", "", 0, 0, "every figure"},
	{"MAX_USERS", "<n>", 1, 1, "set the maximum number of accounts"},
	{"MAX_CONNEC", "<n>", 1, 1, "set the maximum of concurrent SMTP+POP3 connections"},
	{"TIMEOUT", "<seconds>", 1, 1, "pause mail service; answers when the pause ends"},
	{"RESUME", "", 0, 0, "end a pause now"},
	{"ADD_USER", "<name> <password>", 2, 2, "create an account and its Maildir"},
	{"DELETE_USER", "<name>", 1, 1, "delete an account (its mail is archived)"},
	{"RESET_USER_PASSWORD", "<name>", 1, 1, "give an account a new random password"},
	{"CHANGE_PASSWORD", "<old> <new>", 2, 2, "change your own password"},
	{"TRANSFORM", "[ON|OFF]", 0, 1, "show or switch message transformation"},
	{"NOOP", "", 0, 0, "do nothing"},
	{"CAPA", "", 0, 0, "the server's command list"},
}

// aliases maps the seed's command names to the protocol's.
var aliases = map[string]string{
	"MAX_CONNECTIONS": "MAX_CONNEC",
	"HISTORIC_CONEC":  "HISTORIC_CONNEC",
	"LIVE_CONEC":      "LIVE_CONNEC",
}

func findCommand(word string) (mgmtCommand, bool) {
	name := strings.ToUpper(word)
	if a, ok := aliases[name]; ok {
		name = a
	}
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return mgmtCommand{}, false
}

func commandList(prefix string) string {
	var b strings.Builder
	b.WriteString(prefix + "HELP\n")
	for _, c := range commands {
		line := prefix + c.name
		if c.args != "" {
			line += " " + c.args
		}
		fmt.Fprintf(&b, "%-40s %s\n", line, c.help)
	}
	b.WriteString(prefix + "MAX_CONNECTIONS <n> is accepted for MAX_CONNEC.\n")
	return b.String()
}

// usageError is a mistake on the command line (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// options are the flags of the modern form (they also apply to the seed
// form, e.g. --addr and --json).
type options struct {
	addr, user, passwordFile, caFile string
	tls, json, help                  bool
}

// invocation is one parsed command line.
type invocation struct {
	seed     bool
	version  string // seed form only
	user     string
	password string
	cmd      mgmtCommand
	args     []string
	help     bool // print the command list locally, do not connect
}

var versionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)

// app holds the streams and environment of one run, for tests.
type app struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	a := &app{getenv: getenv, stdout: stdout, stderr: stderr}
	code := exitOK
	root := a.rootCommand(&code)
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "admin_monitor:", err)
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(stderr, "Run 'admin_monitor --help' for usage.")
		}
		return exitUsage
	}
	return code
}

func (a *app) rootCommand(code *int) *cobra.Command {
	var o options
	root := &cobra.Command{
		Use:   "admin_monitor [flags] COMMAND [ARGS]\n  admin_monitor [flags] <version> <user> <password> -COMMAND [ARGS]",
		Short: "One-shot client of buzon's management protocol (MGMT)",
		Long: "admin_monitor logs in to buzon's MGMT port, runs one command and prints the answer.\n\n" +
			"The password comes from --password-file or BUZON_MGMT_PASSWORD (modern form) or\n" +
			"from the command line (seed form). The address comes from --addr or\n" +
			"BUZON_MGMT_ADDR, default " + defaultAddr + ".\n" +
			"Exit status: 0 on +OK, 1 on -ERR (a refused login included), 2 on usage,\n" +
			"connection or version errors.\n\nCommands:\n" + commandList("  "),
		Example: "  BUZON_MGMT_PASSWORD=secret admin_monitor STATUS\n" +
			"  admin_monitor --password-file /etc/buzon/admin.pw --json MAX_CONNEC 200\n" +
			"  admin_monitor 1.0 admin secret -STATUS",
		// The seed form's "-STATUS" is not a flag: flags are split out by
		// parseArgs, which knows only the long flags below.
		DisableFlagParsing: true,
		SilenceErrors:      true,
		SilenceUsage:       true,
		RunE: func(cmd *cobra.Command, args []string) error {
			inv, err := a.parseArgs(cmd, &o, args)
			if err != nil {
				return err
			}
			if o.help {
				return cmd.Help()
			}
			if inv.help {
				fmt.Fprint(a.stdout, commandList("-"))
				return nil
			}
			c, err := a.execute(&o, inv)
			*code = c
			return err
		},
	}
	f := root.Flags()
	f.StringVar(&o.addr, "addr", "", "MGMT address host:port (default $BUZON_MGMT_ADDR or "+defaultAddr+")")
	f.StringVar(&o.user, "user", "admin", "admin user name")
	f.StringVar(&o.passwordFile, "password-file", "", "read the password from the first line of this file")
	f.BoolVar(&o.tls, "tls", false, "STLS before login")
	f.StringVar(&o.caFile, "ca-file", "", "PEM certificates to trust for --tls (default: the system's)")
	f.BoolVar(&o.json, "json", false, "print the reply as JSON")
	f.BoolVarP(&o.help, "help", "h", false, "help")
	return root
}

// parseArgs splits the known flags from the positional arguments (flags
// may appear anywhere; "--" ends them) and recognises the two forms.
func (a *app) parseArgs(cmd *cobra.Command, o *options, args []string) (*invocation, error) {
	var flagArgs, rest []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			rest = append(rest, args[i+1:]...)
			break
		}
		if arg == "-h" {
			flagArgs = append(flagArgs, arg)
			continue
		}
		if !strings.HasPrefix(arg, "--") {
			rest = append(rest, arg)
			continue
		}
		name, _, hasValue := strings.Cut(arg[2:], "=")
		fl := cmd.Flags().Lookup(name)
		if fl == nil {
			return nil, usagef("unknown flag --%s", name)
		}
		flagArgs = append(flagArgs, arg)
		if fl.Value.Type() != "bool" && !hasValue {
			if i+1 >= len(args) {
				return nil, usagef("flag --%s needs a value", name)
			}
			i++
			flagArgs = append(flagArgs, args[i])
		}
	}
	if err := cmd.Flags().Parse(flagArgs); err != nil {
		return nil, usagef("%v", err)
	}
	if o.help {
		return &invocation{}, nil
	}
	if len(rest) == 0 {
		return nil, usagef("no command given")
	}
	if strings.EqualFold(rest[0], "-HELP") || strings.EqualFold(rest[0], "HELP") {
		return &invocation{help: true}, nil
	}

	inv := &invocation{}
	var word string
	var cmdArgs []string
	if versionRE.MatchString(rest[0]) {
		// Seed form: <version> <user> <password> -<COMMAND> [args].
		if len(rest) < 4 || !strings.HasPrefix(rest[3], "-") {
			return nil, usagef("usage: admin_monitor <version> <user> <password> -<COMMAND> [args]")
		}
		inv.seed, inv.version, inv.user, inv.password = true, rest[0], rest[1], rest[2]
		word, cmdArgs = rest[3][1:], rest[4:]
		if strings.EqualFold(word, "HELP") {
			return &invocation{help: true}, nil
		}
	} else {
		word, cmdArgs = strings.TrimPrefix(rest[0], "-"), rest[1:]
		inv.user = o.user
		pw, err := a.password(o)
		if err != nil {
			return nil, err
		}
		inv.password = pw
	}
	c, ok := findCommand(word)
	if !ok {
		return nil, usagef("unknown command %q (admin_monitor -HELP lists them)", word)
	}
	if len(cmdArgs) < c.minA || len(cmdArgs) > c.maxA {
		return nil, usagef("usage: %s %s", c.name, c.args)
	}
	for _, arg := range cmdArgs {
		if !wordOK(arg) {
			return nil, usagef("arguments cannot be empty or hold spaces or control characters")
		}
	}
	// MGMT is space-separated: such a name or password could never log in.
	if !wordOK(inv.user) || !wordOK(inv.password) {
		return nil, usagef("the user name and the password cannot be empty or hold spaces or control characters")
	}
	inv.cmd, inv.args = c, cmdArgs
	return inv, nil
}

// wordOK tells whether s can travel as one MGMT argument.
func wordOK(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// password reads the modern form's password: --password-file, else
// BUZON_MGMT_PASSWORD (never argv, so it stays out of the process list).
func (a *app) password(o *options) (string, error) {
	if o.passwordFile != "" {
		b, err := os.ReadFile(o.passwordFile)
		if err != nil {
			return "", usagef("password file: %v", err)
		}
		pw, _, _ := strings.Cut(string(b), "\n")
		pw = strings.TrimSuffix(pw, "\r")
		if pw == "" {
			return "", usagef("password file %s is empty", o.passwordFile)
		}
		return pw, nil
	}
	if pw := a.getenv("BUZON_MGMT_PASSWORD"); pw != "" {
		return pw, nil
	}
	return "", usagef("no password: use --password-file or BUZON_MGMT_PASSWORD")
}

func (a *app) tlsConfig(o *options, addr string) (*tls.Config, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, usagef("address %q: %v", addr, err)
	}
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, usagef("CA file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("CA file %s holds no certificate", o.caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// jsonReply is --json's shape (SPEC §8): always these five keys; error is
// null on success.
type jsonReply struct {
	Command string         `json:"command"`
	OK      bool           `json:"ok"`
	Fields  map[string]any `json:"fields"`
	Lines   []string       `json:"lines"`
	Error   *string        `json:"error"`
}

// loginRefused names a refused login, which the server answers with a bare
// "-ERR" so as not to tell a prober why (SPEC §7).
const loginRefused = "LOGIN REFUSED"

const loginRefusedHint = "admin_monitor: login refused (wrong user or password, not an admin, " +
	"or plaintext login not allowed: try --tls)"

// execute connects, logs in, runs the command and prints. It returns the
// exit status; an error means exit 2 (printed by run).
func (a *app) execute(o *options, inv *invocation) (int, error) {
	addr := o.addr
	if addr == "" {
		addr = a.getenv("BUZON_MGMT_ADDR")
	}
	if addr == "" {
		addr = defaultAddr
	}
	var tlsCfg *tls.Config
	if o.tls {
		var err error
		if tlsCfg, err = a.tlsConfig(o, addr); err != nil {
			return exitUsage, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	c, err := client.Dial(ctx, addr)
	if err != nil {
		return exitUsage, err
	}
	defer c.Close()
	c.Timeout = replyTimeout

	// The seed form prints every line as received (without the final "."),
	// -ERR lines on stderr; the modern form prints only the reply.
	echo := inv.seed && !o.json
	printLine := func(l string) {
		if strings.HasPrefix(l, "-ERR") {
			fmt.Fprintln(a.stderr, l)
		} else {
			fmt.Fprintln(a.stdout, l)
		}
	}
	if echo {
		printLine(c.Greeting)
		c.Trace = printLine
	}
	if inv.seed && c.Version() != inv.version {
		return exitUsage, fmt.Errorf("version mismatch: the server speaks MGMT %q, not %q", c.Version(), inv.version)
	}
	if o.tls {
		if err := c.StartTLS(tlsCfg); err != nil {
			return exitUsage, fmt.Errorf("STLS: %w", err)
		}
	}

	var reply *client.Reply
	refused := false
	if err := c.Login(inv.user, inv.password); err != nil {
		var me *client.Error
		if !errors.As(err, &me) {
			return exitUsage, err
		}
		reply, refused = &client.Reply{Status: me.Reason}, true
	} else {
		if inv.cmd.name == "TIMEOUT" {
			c.Timeout = 0
		}
		if reply, err = c.Do(inv.cmd.name, inv.args...); err != nil {
			return exitUsage, err
		}
		c.Timeout = replyTimeout
	}
	_ = c.Quit()

	code := exitOK
	if !reply.OK {
		code = exitERR
	}
	if refused {
		// The seed form has printed the "-ERR" as received already.
		if reply.Status == "" {
			reply.Status = loginRefused
		}
		fmt.Fprintln(a.stderr, loginRefusedHint)
	}
	switch {
	case o.json:
		return code, a.printJSON(inv.cmd.name, reply)
	case echo, refused:
	case reply.OK:
		fmt.Fprintln(a.stdout, "+OK "+reply.Status)
		for _, l := range reply.Lines {
			fmt.Fprintln(a.stdout, l)
		}
	default:
		fmt.Fprintln(a.stderr, reply.Err())
	}
	return code, nil
}

func (a *app) printJSON(cmd string, r *client.Reply) error {
	fields, bare := r.Fields()
	out := jsonReply{Command: cmd, OK: r.OK, Fields: map[string]any{}, Lines: bare}
	if out.Lines == nil {
		out.Lines = []string{}
	}
	for k, v := range fields {
		out.Fields[k] = jsonValue(k, v)
	}
	if !r.OK {
		reason := r.Status
		if reason == "" {
			reason = "ERR" // a bare -ERR outside the login
		}
		out.Error = &reason
		if reason != loginRefused {
			fmt.Fprintln(a.stderr, r.Err())
		}
	}
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// jsonValue gives a figure as a JSON number (SPEC §8) and anything else as
// a string. Only canonical decimals count as numbers, so that no text is
// altered (a leading zero would be lost), and a password stays a string
// even when it happens to be all digits.
func jsonValue(key, v string) any {
	if key == "NEW PASSWORD" {
		return v
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != v {
		return v
	}
	return n
}
