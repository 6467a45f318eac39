package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// POP3ListConfig describes repeated listing sessions on one mailbox.
type POP3ListConfig struct {
	Addr     string
	Account  Account
	Sessions int           // sequential sessions: connect, greeting, USER, PASS, STAT, LIST, UIDL, QUIT
	Timeout  time.Duration // per I/O step; default 30s
	PID      int           // server PID: sample its memory while running (0 = don't)
	Progress io.Writer     // one progress line per second while running (nil = none)
	Name     string        // Result.Name; default derived from params
}

// RunPOP3List runs Sessions listing sessions one after the other. Ops
// counts sessions completed, Latency is per session. Extra: "messages"
// (STAT's count), "login_p50_ns" (connect to PASS's reply) and
// "list_p50_ns" (LIST and UIDL).
func RunPOP3List(ctx context.Context, cfg POP3ListConfig) (Result, error) {
	cfg.Timeout = orDefault(cfg.Timeout, 30*time.Second)
	switch {
	case cfg.Addr == "":
		return Result{}, errors.New("pop3-list: no server address")
	case cfg.Sessions <= 0:
		return Result{}, errors.New("pop3-list: sessions must be > 0")
	case cfg.Timeout < 0:
		return Result{}, errors.New("pop3-list: timeout must not be negative")
	}
	cfg.Name = orDefault(cfg.Name, fmt.Sprintf("pop3-list x%d", cfg.Sessions))
	params := map[string]any{"addr": cfg.Addr, "user": cfg.Account.User, "sessions": cfg.Sessions,
		"timeout": cfg.Timeout.String(), "pid": cfg.PID}

	r := newRun(cfg.PID)
	stop := r.progress(cfg.Progress, "pop3-list", int64(cfg.Sessions), "sessions")
	c := &pop3Client{w: newWire()}
	var lats, logins, lists []time.Duration
	messages := -1
	for i := 0; i < cfg.Sessions && ctx.Err() == nil; i++ {
		t0 := time.Now()
		n, login, list, err := c.listSession(ctx, &cfg)
		c.w.close()
		if err != nil {
			if ctx.Err() == nil {
				r.fail(kindOf(err))
			}
			continue
		}
		lats = append(lats, time.Since(t0))
		logins = append(logins, login)
		lists = append(lists, list)
		messages = n
		r.ops.Add(1)
	}
	r.addLatencies(lats)
	stop()
	res := r.result("pop3-list", cfg.Name, params)
	res.Extra = map[string]any{
		"messages": messages,
	}
	if len(lats) > 0 {
		// The first session is kept apart before the percentiles sort the
		// slices: it may pay costs later ones do not (a cold directory
		// cache, a password check the server then remembers).
		res.Extra["first_session_ns"] = int64(lats[0])
		res.Extra["first_login_ns"] = int64(logins[0])
		res.Extra["login_p50_ns"] = int64(percentiles(logins).P50)
		res.Extra["list_p50_ns"] = int64(percentiles(lists).P50)
	}
	return res, nil
}

// listSession is one session; it returns STAT's count and the time of the
// login and of LIST plus UIDL.
func (c *pop3Client) listSession(ctx context.Context, cfg *POP3ListConfig) (n int, login, list time.Duration, err error) {
	t0 := time.Now()
	if _, err = c.login(ctx, cfg.Addr, cfg.Timeout, cfg.Account, false); err != nil {
		return
	}
	login = time.Since(t0)
	if n, err = c.stat(); err != nil {
		return
	}
	t1 := time.Now()
	for _, cmd := range []string{"LIST", "UIDL"} {
		if err = c.command(cmd); err != nil {
			return
		}
		lines := 0
		if err = c.multiLine(func([]byte) { lines++ }); err != nil {
			return
		}
		if lines != n {
			err = fmt.Errorf("%s listed %d messages, STAT said %d", cmd, lines, n)
			return
		}
	}
	list = time.Since(t1)
	err = c.command("QUIT")
	return
}
