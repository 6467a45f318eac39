package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// ConnsConfig describes an idle-connection load: Count connections opened
// and held, SMTP and POP3 alternating.
type ConnsConfig struct {
	SMTPAddr, POP3Addr string        // alternate between them; either may be empty (then all go to the other)
	Count              int           // connections to open and hold
	Parallel           int           // dials in flight at once; default 200
	Hold               time.Duration // keep all open this long after the last greeting (default 1s)
	Timeout            time.Duration // per dial and greeting; default 30s
	PID                int           // server PID: RSS idle, held and per connection (0 = don't)
	Progress           io.Writer     // one progress line per second while running (nil = none)
	Name               string        // Result.Name; default derived from params
}

// greetingBuf bounds a greeting: enough for any sane banner, small enough
// for 10,000 connections at once.
const greetingBuf = 1024

// RunConns opens Count connections, waits for each greeting (220 or +OK),
// holds the greeted ones for Hold and closes them all. Ops counts the
// greeted connections, Latency is dial to greeting. With PID, Extra holds
// "rss_idle_kib" (before dialling), "rss_held_kib" (everything held, once
// the RSS has settled) and "rss_per_conn_kib". The soft limit on open
// files is raised to the hard one; more than that allows is an error.
func RunConns(ctx context.Context, cfg ConnsConfig) (Result, error) {
	cfg.Parallel = orDefault(cfg.Parallel, 200)
	cfg.Hold = orDefault(cfg.Hold, time.Second)
	cfg.Timeout = orDefault(cfg.Timeout, 30*time.Second)
	switch {
	case cfg.SMTPAddr == "" && cfg.POP3Addr == "":
		return Result{}, errors.New("conns: no server address")
	case cfg.Count <= 0:
		return Result{}, errors.New("conns: count must be > 0")
	case cfg.Parallel < 0 || cfg.Hold < 0 || cfg.Timeout < 0:
		return Result{}, errors.New("conns: parallel, hold and timeout must not be negative")
	}
	if err := raiseNoFile(uint64(cfg.Count) + 64); err != nil {
		return Result{}, fmt.Errorf("conns: %w", err)
	}
	cfg.Name = orDefault(cfg.Name, fmt.Sprintf("conns %d", cfg.Count))
	params := map[string]any{"smtp_addr": cfg.SMTPAddr, "pop3_addr": cfg.POP3Addr, "count": cfg.Count,
		"parallel": cfg.Parallel, "hold": cfg.Hold.String(), "timeout": cfg.Timeout.String(), "pid": cfg.PID}

	var idle int64
	if cfg.PID > 0 {
		var err error
		if idle, err = ReadRSS(cfg.PID); err != nil {
			return Result{}, fmt.Errorf("conns: %w", err)
		}
	}
	r := newRun(cfg.PID)
	stop := r.progress(cfg.Progress, "conns", int64(cfg.Count), "greeted")
	held := make([]net.Conn, cfg.Count)
	lats := make([]time.Duration, cfg.Count)
	sem := make(chan struct{}, cfg.Parallel)
	var wg sync.WaitGroup
dial:
	for i := range cfg.Count {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break dial
		}
		addr, smtp := cfg.SMTPAddr, true
		if addr == "" || (i%2 == 1 && cfg.POP3Addr != "") {
			addr, smtp = cfg.POP3Addr, false
		}
		wg.Go(func() {
			defer func() { <-sem }()
			t0 := time.Now()
			c, err := greeted(ctx, addr, smtp, cfg.Timeout)
			if err != nil {
				if ctx.Err() == nil {
					r.fail(kindOf(err))
				}
				return
			}
			held[i], lats[i] = c, time.Since(t0)
			r.ops.Add(1)
		})
	}
	wg.Wait()
	stop()
	defer func() {
		for _, c := range held {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	var greetedLats []time.Duration
	for i, c := range held {
		if c != nil {
			greetedLats = append(greetedLats, lats[i])
		}
	}
	r.addLatencies(greetedLats)
	// The run's clock stops at the last greeting: Hold is not part of it.
	res := r.result("conns", cfg.Name, params)
	res.Extra = map[string]any{"greeted": res.Ops}
	if cfg.PID > 0 && ctx.Err() == nil {
		heldKiB := settledRSS(ctx, cfg.PID, 5*time.Second)
		res.Extra["rss_idle_kib"] = idle
		res.Extra["rss_held_kib"] = heldKiB
		if res.Ops > 0 {
			res.Extra["rss_per_conn_kib"] = float64(heldKiB-idle) / float64(res.Ops)
		}
		if res.Server != nil && heldKiB > res.Server.PeakKiB {
			res.Server.PeakKiB = heldKiB
		}
	}
	select {
	case <-time.After(cfg.Hold):
	case <-ctx.Done():
	}
	return res, nil
}

// greeted dials addr and reads the greeting: a final "220 " line for
// SMTP (RFC 5321 §4.2: "220-" lines may come first), "+OK" for POP3
// (RFC 1939 §4). Anything else is a replyError with its code ("421",
// "-ERR") and the connection is closed.
func greeted(ctx context.Context, addr string, smtp bool, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, dialError{err}
	}
	unwatch := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer unwatch()
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	if err := readGreeting(c, smtp); err != nil {
		_ = c.Close()
		return nil, err
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

func readGreeting(c net.Conn, smtp bool) error {
	var buf [greetingBuf]byte
	n := 0
	for {
		m, err := c.Read(buf[n:])
		n += m
		for {
			line, rest, ok := bytes.Cut(buf[:n], []byte("\n"))
			if !ok {
				break
			}
			line = bytes.TrimRight(line, "\r")
			switch {
			case !smtp && bytes.HasPrefix(line, []byte("+OK")):
				return nil
			case !smtp && bytes.HasPrefix(line, []byte("-ERR")):
				return replyError{code: "-ERR", line: string(line)}
			case !smtp:
				return fmt.Errorf("malformed greeting %q", line)
			case len(line) < 3 || !digits(line[:3]):
				return fmt.Errorf("malformed greeting %q", line)
			case len(line) > 3 && line[3] == '-':
				n = copy(buf[:], rest) // a continuation line; read on
				continue
			case string(line[:3]) == "220":
				return nil
			default:
				return replyError{code: string(line[:3]), line: string(line)}
			}
		}
		if err != nil {
			return err
		}
		if n == len(buf) {
			return fmt.Errorf("greeting line longer than %d octets", len(buf))
		}
	}
}

// settledRSS polls pid's RSS every 100ms until two readings differ by at
// most 64 KiB or 0.1%, or within has passed, and returns the last reading.
func settledRSS(ctx context.Context, pid int, within time.Duration) int64 {
	prev, _ := ReadRSS(pid)
	deadline := time.Now().Add(within)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return prev
		case <-t.C:
		}
		cur, err := ReadRSS(pid)
		if err != nil {
			return prev
		}
		diff := cur - prev
		if diff < 0 {
			diff = -diff
		}
		prev = cur
		if diff <= 64 || diff <= cur/1000 {
			break
		}
	}
	return prev
}

// raiseNoFile lifts the soft limit on open files to the hard limit and
// fails when need is above the hard limit.
func raiseNoFile(need uint64) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("read the open files limit: %w", err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return fmt.Errorf("raise the open files limit to %d: %w", rl.Max, err)
		}
	}
	if need > rl.Max {
		return fmt.Errorf("%d file descriptors needed, the hard limit is %d (raise it: ulimit -Hn, or LimitNOFILE)", need, rl.Max)
	}
	return nil
}
