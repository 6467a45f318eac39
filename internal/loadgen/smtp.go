package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Account is a mailbox login.
type Account struct{ User, Pass string }

// SMTPConfig describes an SMTP load: Messages transactions of Size octets
// over Conns connections, each sending many transactions in turn the way
// Postfix's smtp-source does.
type SMTPConfig struct {
	Addr        string        // host:port
	Messages    int           // total transactions
	Size        int           // message size in octets, CRLF form, exact
	Conns       int           // concurrent connections, default 1
	PerConn     int           // transactions per connection before QUIT and redial; 0 = unlimited
	From        string        // envelope sender, default "bench@localhost"
	To          []string      // recipients, used round-robin (one RCPT per transaction); required
	Helo        string        // default "bench.localhost"
	Auth        *Account      // AUTH PLAIN after EHLO (and after STARTTLS if set)
	StartTLS    bool          // STARTTLS after the first EHLO
	InsecureTLS bool          // skip certificate verification
	Timeout     time.Duration // per I/O step; default 30s
	PID         int           // server PID: sample its memory while running (0 = don't)
	Progress    io.Writer     // one progress line per second while running (nil = none)
	Name        string        // Result.Name; default derived from params
}

// RunSMTP runs the SMTP load. Ops counts messages accepted with 250 after
// DATA, Bytes their size; Latency is per transaction, from writing MAIL to
// the reply after the final "."; Errors count replies by code and I/O
// failures by kind, each failure ending one transaction.
func RunSMTP(ctx context.Context, cfg SMTPConfig) (Result, error) {
	cfg.Conns = orDefault(cfg.Conns, 1)
	cfg.From = orDefault(cfg.From, "bench@localhost")
	cfg.Helo = orDefault(cfg.Helo, "bench.localhost")
	cfg.Timeout = orDefault(cfg.Timeout, 30*time.Second)
	switch {
	case cfg.Addr == "":
		return Result{}, errors.New("smtp: no server address")
	case cfg.Messages <= 0:
		return Result{}, errors.New("smtp: messages must be > 0")
	case len(cfg.To) == 0:
		return Result{}, errors.New("smtp: at least one recipient is required")
	case cfg.Conns < 0 || cfg.PerConn < 0 || cfg.Timeout < 0:
		return Result{}, errors.New("smtp: connections, per-connection count and timeout must not be negative")
	}
	cfg.Name = orDefault(cfg.Name, fmt.Sprintf("smtp %dx%s c=%d", cfg.Messages, sizeLabel(cfg.Size), cfg.Conns))
	prefix := strconv.FormatInt(time.Now().UnixNano(), 36) + "." + strconv.Itoa(os.Getpid())
	block := newBodyBlock()
	if _, _, err := newMessageGen(block, cfg.From, cfg.Size, prefix).header(0, cfg.To[0], time.Now()); err != nil {
		return Result{}, fmt.Errorf("smtp: %w", err)
	}
	params := map[string]any{
		"addr": cfg.Addr, "messages": cfg.Messages, "size": cfg.Size, "conns": cfg.Conns,
		"per_conn": cfg.PerConn, "from": cfg.From, "to": cfg.To, "helo": cfg.Helo,
		"starttls": cfg.StartTLS, "insecure_tls": cfg.InsecureTLS, "timeout": cfg.Timeout.String(), "pid": cfg.PID,
	}
	if cfg.Auth != nil {
		params["auth_user"] = cfg.Auth.User
	}

	r := newRun(cfg.PID)
	stop := r.progress(cfg.Progress, fmt.Sprintf("smtp c=%d", cfg.Conns), int64(cfg.Messages), "msgs")
	var next atomic.Int64
	claim := func() (int64, bool) {
		n := next.Add(1)
		return n, n <= int64(cfg.Messages) && ctx.Err() == nil
	}
	var wg sync.WaitGroup
	for range cfg.Conns {
		wg.Go(func() {
			c := &smtpClient{cfg: &cfg, w: newWire(), gen: newMessageGen(block, cfg.From, cfg.Size, prefix)}
			c.run(ctx, r, claim)
		})
	}
	wg.Wait()
	stop()
	return r.result("smtp", cfg.Name, params), nil
}

type smtpClient struct {
	cfg *SMTPConfig
	w   *wire
	gen *messageGen
}

// run claims transactions until none are left. A failure to set up a
// connection uses up the transaction it was for, so a dead server ends
// the run instead of spinning.
func (c *smtpClient) run(ctx context.Context, r *run, claim func() (int64, bool)) {
	var lats []time.Duration
	defer func() { r.addLatencies(lats) }()
	fail := func(err error) {
		if ctx.Err() == nil {
			r.fail(kindOf(err))
		}
	}
	n, ok := claim()
	for ok {
		if err := c.connect(ctx); err != nil {
			fail(err)
			c.w.close()
			n, ok = claim()
			continue
		}
		for sent := 1; ; sent++ {
			lat, err := c.transaction(n)
			var fatal bool
			if err != nil {
				fail(err)
				var re replyError
				fatal = !errors.As(err, &re) || re.code == "421"
			} else {
				lats = append(lats, lat)
				r.ops.Add(1)
				r.bytes.Add(int64(c.cfg.Size))
			}
			n, ok = claim()
			if fatal {
				break
			}
			if !ok || (c.cfg.PerConn > 0 && sent >= c.cfg.PerConn) {
				_ = c.w.command("QUIT")
				_, _ = c.reply()
				break
			}
		}
		c.w.close()
	}
}

// connect dials and runs greeting, EHLO, STARTTLS and AUTH as configured.
func (c *smtpClient) connect(ctx context.Context) error {
	if err := c.w.dial(ctx, c.cfg.Addr, c.cfg.Timeout); err != nil {
		return err
	}
	if err := c.expect(220); err != nil {
		return err
	}
	if err := c.step(250, "EHLO ", c.cfg.Helo); err != nil {
		return err
	}
	if c.cfg.StartTLS {
		if err := c.step(220, "STARTTLS"); err != nil {
			return err
		}
		host, _, _ := net.SplitHostPort(c.cfg.Addr)
		tc := tls.Client(c.w.conn, &tls.Config{ServerName: host, InsecureSkipVerify: c.cfg.InsecureTLS})
		if err := tc.HandshakeContext(ctx); err != nil {
			return tlsError{err}
		}
		c.w.use(tc)
		// RFC 3207 §4.2: the client forgets what it knew and says EHLO again.
		if err := c.step(250, "EHLO ", c.cfg.Helo); err != nil {
			return err
		}
	}
	if a := c.cfg.Auth; a != nil {
		// RFC 4954 with the PLAIN mechanism of RFC 4616: authzid NUL
		// authcid NUL passwd, with an empty authzid.
		resp := base64.StdEncoding.EncodeToString([]byte("\x00" + a.User + "\x00" + a.Pass))
		if err := c.step(235, "AUTH PLAIN ", resp); err != nil {
			return err
		}
	}
	return nil
}

// transaction sends message n: MAIL, RCPT, DATA, the dot-stuffed message
// and the final "." (RFC 5321 §4.1.1.4), returning the time from MAIL to
// the last reply. After a refused MAIL, RCPT or DATA it resets the
// transaction with RSET.
func (c *smtpClient) transaction(n int64) (time.Duration, error) {
	to := c.cfg.To[(n-1)%int64(len(c.cfg.To))]
	t0 := time.Now()
	err := c.step(250, "MAIL FROM:<", c.cfg.From, ">")
	if err == nil {
		err = c.step(250, "RCPT TO:<", to, ">")
	}
	if err == nil {
		err = c.step(354, "DATA")
	}
	if err != nil {
		var re replyError
		if errors.As(err, &re) && re.code != "421" {
			_ = c.step(250, "RSET")
		}
		return 0, err
	}
	if err := c.gen.write(c.w.w, n, to, t0, true); err != nil {
		return 0, err
	}
	if _, err := c.w.w.WriteString(".\r\n"); err != nil {
		return 0, err
	}
	if err := c.w.w.Flush(); err != nil {
		return 0, err
	}
	if err := c.expect(250); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// step sends a command and expects the reply code want.
func (c *smtpClient) step(want int, parts ...string) error {
	if err := c.w.command(parts...); err != nil {
		return err
	}
	return c.expect(want)
}

func (c *smtpClient) expect(want int) error {
	code, err := c.reply()
	if err != nil {
		return err
	}
	if code != want {
		return replyError{code: strconv.Itoa(code), line: strconv.Itoa(code)}
	}
	return nil
}

// reply reads a possibly multi-line reply (RFC 5321 §4.2.1: "xyz-" lines
// continue it, the "xyz " or bare "xyz" line ends it) and returns its code.
func (c *smtpClient) reply() (int, error) {
	for {
		line, err := c.w.readLine()
		if err != nil {
			return 0, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) < 3 {
			return 0, fmt.Errorf("malformed reply %q", line)
		}
		code := 0
		for _, d := range line[:3] {
			code = code*10 + int(d-'0')
		}
		if !digits(line[:3]) || code < 200 || code > 599 {
			return 0, fmt.Errorf("malformed reply %q", line)
		}
		if len(line) == 3 || line[3] != '-' {
			return code, nil
		}
	}
}

func digits(b []byte) bool {
	for _, d := range b {
		if d < '0' || d > '9' {
			return false
		}
	}
	return true
}
