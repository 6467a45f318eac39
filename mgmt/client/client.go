// Package client speaks the MGMT protocol (SPEC §7) from the
// administrator's side; admin_monitor and the tests use it.
package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// ErrProtocol: the server sent something that is not MGMT.
var ErrProtocol = errors.New("mgmt client: protocol error")

// maxLine bounds a line from the server, line end included. MGMT's lines
// are short (a figure, a user name, a CAPA entry); a longer one means the
// peer is not an MGMT server, and reading it whole would let it grow our
// memory without end.
const maxLine = 4096

// Client is one MGMT session. Not safe for concurrent use.
type Client struct {
	conn net.Conn
	br   *bufio.Reader
	// Greeting is the server's first line, e.g. "+OK buzon MGMT 1.0 ready".
	Greeting string
	// Trace, when set, receives every line read from the server except the
	// final "." of a multi-line reply, undotted, as admin_monitor prints them.
	Trace func(line string)
	// Timeout bounds each exchange; 0 means none.
	Timeout  time.Duration
	loggedIn bool
}

// Reply is one answer of the server.
type Reply struct {
	OK bool
	// Status is the first line without "+OK " / "-ERR ", e.g. "STATUS" or
	// "INVALID MAX USERS" (empty for a bare "-ERR").
	Status string
	// Lines are the data lines of a multi-line success, dot-stuffing removed.
	Lines []string
}

// Err returns nil for a success, else an *Error carrying the reason.
func (r *Reply) Err() error {
	if r.OK {
		return nil
	}
	return &Error{Reason: r.Status}
}

// Fields splits the data lines into "KEY: VALUE" fields and bare lines.
func (r *Reply) Fields() (fields map[string]string, bare []string) {
	fields = map[string]string{}
	for _, l := range r.Lines {
		if k, v, ok := strings.Cut(l, ": "); ok && k != "" && k == strings.ToUpper(k) {
			fields[k] = v
			continue
		}
		bare = append(bare, l)
	}
	return fields, bare
}

// Int returns the numeric field key (false if absent or not a number).
func (r *Reply) Int(key string) (int64, bool) {
	f, _ := r.Fields()
	v, ok := f[key]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// Error is a -ERR reply.
type Error struct{ Reason string }

func (e *Error) Error() string {
	if e.Reason == "" {
		return "-ERR"
	}
	return "-ERR " + e.Reason
}

// Dial connects and reads the greeting.
func Dial(ctx context.Context, addr string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	c := NewClient(conn)
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
		defer conn.SetDeadline(time.Time{})
	}
	if err := c.ReadGreeting(); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// NewClient wraps an open connection; call ReadGreeting next.
func NewClient(conn net.Conn) *Client {
	return &Client{conn: conn, br: bufio.NewReaderSize(conn, maxLine)}
}

// ReadGreeting reads the server's first line.
func (c *Client) ReadGreeting() error {
	line, err := c.readLine()
	if err != nil {
		return fmt.Errorf("read greeting: %w", err)
	}
	c.Greeting = line
	if !strings.HasPrefix(line, "+OK ") {
		return fmt.Errorf("%w: greeting %q", ErrProtocol, line)
	}
	return nil
}

// Version returns the protocol version of the greeting
// ("+OK buzon MGMT 1.0 ready" → "1.0"), or "" when there is none.
func (c *Client) Version() string {
	f := strings.Fields(c.Greeting)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "MGMT" {
			return f[i+1]
		}
	}
	return ""
}

// Close closes the connection without QUIT.
func (c *Client) Close() error { return c.conn.Close() }

// Conn is the current connection (the TLS one after StartTLS).
func (c *Client) Conn() net.Conn { return c.conn }

func (c *Client) readLine() (string, error) {
	if c.Timeout > 0 {
		_ = c.conn.SetReadDeadline(time.Now().Add(c.Timeout))
	}
	b, err := c.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", fmt.Errorf("%w: line longer than %d octets", ErrProtocol, maxLine)
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
}

func (c *Client) trace(line string) {
	if c.Trace != nil {
		c.Trace(line)
	}
}

// Send writes one command line. Arguments must not hold spaces.
func (c *Client) Send(cmd string, args ...string) error {
	line := strings.Join(append([]string{cmd}, args...), " ")
	if strings.ContainsAny(line, "\r\n") {
		return fmt.Errorf("mgmt client: line break in command")
	}
	if c.Timeout > 0 {
		_ = c.conn.SetWriteDeadline(time.Now().Add(c.Timeout))
	}
	_, err := c.conn.Write([]byte(line + "\r\n"))
	return err
}

// ReadReply reads one reply; multi says whether a success carries data
// lines ending in ".".
func (c *Client) ReadReply(multi bool) (*Reply, error) {
	first, err := c.readLine()
	if err != nil {
		return nil, err
	}
	c.trace(first)
	r := &Reply{}
	switch {
	case first == "+OK" || strings.HasPrefix(first, "+OK "):
		r.OK = true
		r.Status = strings.TrimPrefix(strings.TrimPrefix(first, "+OK"), " ")
	case first == "-ERR" || strings.HasPrefix(first, "-ERR "):
		r.Status = strings.TrimPrefix(strings.TrimPrefix(first, "-ERR"), " ")
		return r, nil
	default:
		return nil, fmt.Errorf("%w: reply %q", ErrProtocol, first)
	}
	if !multi {
		return r, nil
	}
	for {
		l, err := c.readLine()
		if err != nil {
			return nil, err
		}
		if l == "." {
			return r, nil
		}
		l = strings.TrimPrefix(l, ".") // dot-stuffing
		c.trace(l)
		r.Lines = append(r.Lines, l)
	}
}

// multiLine says whether a success to cmd carries data lines (SPEC §7):
// every ACTIVE-phase success but QUIT's, and CAPA's in either phase.
func (c *Client) multiLine(cmd string) bool {
	cmd = strings.ToUpper(cmd)
	if cmd == "QUIT" {
		return false
	}
	return c.loggedIn || cmd == "CAPA"
}

// Do sends a command and reads its reply. A -ERR is a Reply with OK false,
// not an error; errors are I/O and protocol failures.
func (c *Client) Do(cmd string, args ...string) (*Reply, error) {
	if err := c.Send(cmd, args...); err != nil {
		return nil, err
	}
	return c.ReadReply(c.multiLine(cmd))
}

// StartTLS sends STLS and upgrades the connection.
func (c *Client) StartTLS(cfg *tls.Config) error {
	r, err := c.Do("STLS")
	if err != nil {
		return err
	}
	if err := r.Err(); err != nil {
		return err
	}
	tc := tls.Client(c.conn, cfg)
	if c.Timeout > 0 {
		_ = tc.SetDeadline(time.Now().Add(c.Timeout))
	}
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	_ = tc.SetDeadline(time.Time{})
	c.conn = tc
	c.br = bufio.NewReaderSize(tc, maxLine)
	return nil
}

// Login sends USER and PASS; a refusal is an *Error.
func (c *Client) Login(user, password string) error {
	r, err := c.Do("USER", user)
	if err != nil {
		return err
	}
	if err := r.Err(); err != nil {
		return err
	}
	r, err = c.Do("PASS", password)
	if err != nil {
		return err
	}
	if err := r.Err(); err != nil {
		return err
	}
	c.loggedIn = true
	return nil
}

// Quit sends QUIT, reads +OK GOODBYE and closes the connection.
func (c *Client) Quit() error {
	defer c.conn.Close()
	r, err := c.Do("QUIT")
	if err != nil {
		return err
	}
	return r.Err()
}
