package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// POP3Config describes a POP3 load: one concurrent client per account,
// each retrieving every message of its mailbox.
type POP3Config struct {
	Addr     string
	Accounts []Account // one concurrent client per account
	Delete   bool      // DELE each message after RETR, then QUIT (commits deletion)
	// Pipeline is how many RETR commands are kept in flight when the
	// server lists PIPELINING in CAPA (RFC 2449 §6.6); <= 1 = none.
	Pipeline int
	Timeout  time.Duration // per I/O step; default 30s
	PID      int           // server PID: sample its memory while running (0 = don't)
	Progress io.Writer     // one progress line per second while running (nil = none)
	Name     string        // Result.Name; default derived from params
}

// RunPOP3 logs every account in with USER/PASS and RETRs its messages.
// Ops counts messages retrieved, Bytes their octets (the message as
// stored, in CRLF form, dot-stuffing removed); Latency is per RETR: from
// the command (or, pipelined, the end of the previous reply if later) to
// the end of the message. Elapsed and the rates span the retrieval only,
// from the first RETR sent to the last message read, so that logging in
// (a deliberately slow password hash) does not count; Extra
// "run_elapsed_ns" is the whole run. Extra "pipelined" counts clients that
// used pipelining.
func RunPOP3(ctx context.Context, cfg POP3Config) (Result, error) {
	cfg.Timeout = orDefault(cfg.Timeout, 30*time.Second)
	switch {
	case cfg.Addr == "":
		return Result{}, errors.New("pop3: no server address")
	case len(cfg.Accounts) == 0:
		return Result{}, errors.New("pop3: no accounts")
	case cfg.Timeout < 0:
		return Result{}, errors.New("pop3: timeout must not be negative")
	}
	if cfg.Name == "" {
		cfg.Name = fmt.Sprintf("pop3 c=%d", len(cfg.Accounts))
		if cfg.Pipeline > 1 {
			cfg.Name += fmt.Sprintf(" pipeline=%d", cfg.Pipeline)
		}
		if cfg.Delete {
			cfg.Name += " delete"
		}
	}
	users := make([]string, len(cfg.Accounts))
	for i, a := range cfg.Accounts {
		users[i] = a.User
	}
	params := map[string]any{"addr": cfg.Addr, "users": users, "delete": cfg.Delete, "pipeline": cfg.Pipeline,
		"timeout": cfg.Timeout.String(), "pid": cfg.PID}

	r := newRun(cfg.PID)
	stop := r.progress(cfg.Progress, fmt.Sprintf("pop3 c=%d", len(cfg.Accounts)), 0, "msgs")
	var pipelined atomic.Int64
	var wg sync.WaitGroup
	for _, acct := range cfg.Accounts {
		wg.Go(func() {
			c := &pop3Client{w: newWire()}
			defer c.w.close()
			used, err := c.retrieveAll(ctx, &cfg, acct, r)
			if used {
				pipelined.Add(1)
			}
			if err != nil && ctx.Err() == nil {
				r.fail(kindOf(err))
			}
		})
	}
	wg.Wait()
	stop()
	res := r.result("pop3", cfg.Name, params)
	if res.Extra == nil {
		res.Extra = map[string]any{}
	}
	res.Extra["pipelined"] = pipelined.Load()
	return res, nil
}

// pop3Client speaks just enough POP3 (RFC 1939) for the scenarios.
type pop3Client struct {
	w       *wire
	scratch []byte
}

// login dials, reads the greeting, asks CAPA when wantCapa is set and
// logs in with USER/PASS. It reports whether CAPA listed PIPELINING.
func (c *pop3Client) login(ctx context.Context, addr string, timeout time.Duration, a Account, wantCapa bool) (bool, error) {
	if err := c.w.dial(ctx, addr, timeout); err != nil {
		return false, err
	}
	if err := c.status(); err != nil {
		return false, err
	}
	pipelining := false
	if wantCapa {
		if err := c.w.command("CAPA"); err != nil {
			return false, err
		}
		// A server without CAPA answers -ERR (RFC 2449 §5): no pipelining.
		if err := c.status(); err == nil {
			err := c.multiLine(func(line []byte) {
				f := bytes.Fields(line)
				if len(f) > 0 && bytes.EqualFold(f[0], []byte("PIPELINING")) {
					pipelining = true
				}
			})
			if err != nil {
				return false, err
			}
		} else if !isReply(err) {
			return false, err
		}
	}
	if err := c.command("USER ", a.User); err != nil {
		return false, err
	}
	if err := c.command("PASS ", a.Pass); err != nil {
		return false, err
	}
	return pipelining, nil
}

// stat sends STAT and returns the message count.
func (c *pop3Client) stat() (int, error) {
	if err := c.w.command("STAT"); err != nil {
		return 0, err
	}
	line, err := c.w.readLine()
	if err != nil {
		return 0, err
	}
	if err := statusOf(line); err != nil {
		return 0, err
	}
	f := bytes.Fields(line)
	if len(f) < 2 {
		return 0, fmt.Errorf("malformed STAT reply %q", line)
	}
	n, err := strconv.Atoi(string(f[1]))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("malformed STAT reply %q", line)
	}
	return n, nil
}

// retrieveAll is one pop3 client's work; it reports whether it pipelined.
func (c *pop3Client) retrieveAll(ctx context.Context, cfg *POP3Config, a Account, r *run) (bool, error) {
	var lats []time.Duration
	defer func() { r.addLatencies(lats) }()
	pipelining, err := c.login(ctx, cfg.Addr, cfg.Timeout, a, cfg.Pipeline > 1)
	if err != nil {
		return false, err
	}
	n, err := c.stat()
	if err != nil {
		return false, err
	}
	window := 1
	if pipelining {
		window = cfg.Pipeline
	}
	// Commands go out in batches: up to window messages in flight, topped
	// up when half of them are answered, so a pipelining server gets
	// few, large writes.
	sentAt := make([]time.Time, window)
	sent, done := 0, 0
	var prevEnd, firstSent time.Time
	for done < n {
		if sent-done <= window/2 && sent < n {
			now := time.Now()
			if sent == 0 {
				firstSent = now
			}
			for ; sent < n && sent-done < window; sent++ {
				c.send("RETR ", sent+1)
				if cfg.Delete {
					c.send("DELE ", sent+1)
				}
				sentAt[sent%window] = now
			}
			if err := c.w.w.Flush(); err != nil {
				return pipelining, err
			}
		}
		t0 := sentAt[done%window]
		if prevEnd.After(t0) {
			t0 = prevEnd
		}
		err := c.status()
		retrieved := err == nil
		if retrieved {
			var octets int64
			octets, err = c.body()
			if err == nil {
				prevEnd = time.Now()
				r.window(firstSent, prevEnd)
				lats = append(lats, prevEnd.Sub(t0))
				r.ops.Add(1)
				r.bytes.Add(octets)
			}
		}
		if err != nil && !isReply(err) {
			return pipelining, err
		}
		if err != nil && ctx.Err() == nil {
			r.fail(kindOf(err))
		}
		if cfg.Delete {
			err := c.status()
			if err != nil && !isReply(err) {
				return pipelining, err
			}
			if err != nil && retrieved {
				r.fail(kindOf(err))
			}
		}
		done++
	}
	// QUIT enters the UPDATE state, where deletions take effect (RFC 1939 §6).
	return pipelining, c.command("QUIT")
}

// send buffers one command with a number argument, without allocating.
func (c *pop3Client) send(cmd string, n int) {
	c.scratch = append(strconv.AppendInt(append(c.scratch[:0], cmd...), int64(n), 10), "\r\n"...)
	_, _ = c.w.w.Write(c.scratch)
}

// command sends one command and reads its status line.
func (c *pop3Client) command(parts ...string) error {
	if err := c.w.command(parts...); err != nil {
		return err
	}
	return c.status()
}

// status reads a status line: +OK is nil, -ERR a replyError.
func (c *pop3Client) status() error {
	line, err := c.w.readLine()
	if err != nil {
		return err
	}
	return statusOf(line)
}

func statusOf(line []byte) error {
	switch {
	case bytes.HasPrefix(line, []byte("+OK")):
		return nil
	case bytes.HasPrefix(line, []byte("-ERR")):
		return replyError{code: "-ERR", line: string(bytes.TrimRight(line, "\r\n"))}
	}
	return fmt.Errorf("malformed status line %q", line)
}

func isReply(err error) bool {
	var re replyError
	return errors.As(err, &re)
}

// body reads a multi-line response up to its "." line (RFC 1939 §3) and
// counts the payload octets with the byte-stuffed dots removed. Lines are
// read in place from the buffer; nothing is copied.
func (c *pop3Client) body() (int64, error) {
	var n int64
	start := true
	for {
		line, err := c.w.r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return n, err
		}
		if start && len(line) > 0 && line[0] == '.' {
			if err == nil && (len(line) == 3 && line[1] == '\r' || len(line) == 2) {
				return n, nil
			}
			n-- // the stuffed dot
		}
		n += int64(len(line))
		start = err == nil
	}
}

// multiLine reads a multi-line response, handing each unstuffed line
// (without its line end) to fn.
func (c *pop3Client) multiLine(fn func(line []byte)) error {
	for {
		line, err := c.w.readLine()
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) > 0 && line[0] == '.' {
			if len(line) == 1 {
				return nil
			}
			line = line[1:]
		}
		fn(line)
	}
}
