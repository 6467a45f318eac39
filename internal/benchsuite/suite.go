package benchsuite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/buzon-mail/buzon/internal/loadgen"
)

// Options shape one suite run.
type Options struct {
	// Buzon is the path of the buzon binary to measure.
	Buzon string
	// Quick runs QuickParams instead of DefaultParams (tests).
	Quick bool
	// Params, when set, replaces both.
	Params *Params
	// TempDir is where the run's directory is made ("" = os.TempDir());
	// the disk scenarios measure its file system.
	TempDir string
	// Keep leaves the run's directory (data, config, log) in place.
	Keep bool
	// Progress gets one line per step and the scenarios' progress lines
	// (nil = none).
	Progress io.Writer
}

// account is a bench user; passwords live in memory only.
type account = loadgen.Account

// run is the state of one suite run.
type run struct {
	opts   Options
	p      Params
	srv    *server
	prog   io.Writer
	rep    *Report
	dir    string
	data   string
	sinks  []account
	pop3   []account
	big    account
	list   account
	step   int
	nsteps int
	// rounds holds the rounds measured so far of rows measured in rounds,
	// by role.
	rounds map[string][]loadgen.Result
}

// Run performs the whole suite. It returns an error, with whatever was
// measured so far, when the suite could not run: the server would not
// start or died, or setup failed. Missed targets and counted protocol
// errors are part of the Report, not errors.
func Run(ctx context.Context, opts Options) (Report, error) {
	p := DefaultParams()
	if opts.Quick {
		p = QuickParams()
	}
	if opts.Params != nil {
		p = *opts.Params
	}
	if err := p.Validate(); err != nil {
		return Report{}, err
	}
	if opts.Buzon == "" {
		return Report{}, errors.New("bench: no buzon binary given")
	}
	bin, err := filepath.Abs(opts.Buzon)
	if err != nil {
		return Report{}, fmt.Errorf("bench: %w", err)
	}
	if _, err := os.Stat(bin); err != nil {
		return Report{}, fmt.Errorf("bench: buzon binary: %w", err)
	}
	opts.Buzon = bin
	r := &run{opts: opts, p: p, prog: opts.Progress, rep: &Report{Params: p, rows: map[string]loadgen.Result{}},
		rounds: map[string][]loadgen.Result{}}
	if r.prog == nil {
		r.prog = io.Discard
	}
	err = r.all(ctx)
	r.rep.Targets = evaluate(r.rep.rows, r.rep.IdleRSSKiB, p)
	r.rep.Reference = references(r.rep.rows)
	return *r.rep, err
}

func (r *run) all(ctx context.Context) (err error) {
	note, err := raiseNOFILE(r.p.Conns)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if note != "" {
		r.rep.Notes = append(r.rep.Notes, note)
		fmt.Fprintf(r.prog, "bench: WARNING: %s\n", note)
	}

	r.dir, err = os.MkdirTemp(r.opts.TempDir, "buzon-bench-")
	if err != nil {
		return fmt.Errorf("bench: temp dir: %w", err)
	}
	if r.opts.Keep {
		r.rep.DataDir = r.dir
	} else {
		defer func() {
			if rmErr := os.RemoveAll(r.dir); rmErr != nil && err == nil {
				err = fmt.Errorf("bench: remove %s: %w", r.dir, rmErr)
			}
		}()
	}
	r.data = filepath.Join(r.dir, "data")
	r.rep.Machine = machine(r.dir)

	addrs, err := freeAddrs(3)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	cfgFile := filepath.Join(r.dir, "buzon.yaml")
	logFile := filepath.Join(r.dir, "buzon.log")
	err = writeConfig(cfgFile, serverConfig{
		DataDir: r.data, LogFile: logFile,
		SMTP: addrs[0], POP3: addrs[1], MGMT: addrs[2],
		MaxConns: max(12_000, r.p.Conns+r.p.Conns/5),
	})
	if err != nil {
		return err
	}
	if err := r.makeAccounts(ctx, cfgFile); err != nil {
		return err
	}

	r.srv = &server{bin: r.opts.Buzon, configFile: cfgFile, logFile: logFile, addrs: addrs}
	fmt.Fprintf(r.prog, "bench: starting buzon serve (data in %s)\n", r.dir)
	defer func() {
		if stopErr := r.srv.stop(); stopErr != nil {
			r.rep.Notes = append(r.rep.Notes, stopErr.Error())
		}
	}()
	if err := r.srv.start(ctx); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	pid := r.srv.pid()
	if kib, err := loadgen.ReadRSS(pid); err == nil {
		r.rep.IdleRSSKiB = kib
	} else {
		r.rep.Notes = append(r.rep.Notes, fmt.Sprintf("idle RSS: %v", err))
	}
	fmt.Fprintf(r.prog, "bench: buzon serve pid %d, smtp %s, pop3 %s; idle RSS %.1f MiB\n",
		pid, addrs[0], addrs[1], float64(r.rep.IdleRSSKiB)/1024)
	return r.scenarios(ctx, pid, addrs[0], addrs[1])
}

// makeAccounts creates every bench account through `buzon user add`, with
// random passwords, before the server starts.
func (r *run) makeAccounts(ctx context.Context, cfgFile string) error {
	var all []*account
	for i := range r.p.SinkUsers {
		r.sinks = append(r.sinks, account{User: fmt.Sprintf("sink%02d", i+1)})
	}
	for i := range r.p.POP3Users {
		r.pop3 = append(r.pop3, account{User: fmt.Sprintf("pop%02d", i+1)})
	}
	r.big, r.list = account{User: "big"}, account{User: "list"}
	for i := range r.sinks {
		all = append(all, &r.sinks[i])
	}
	for i := range r.pop3 {
		all = append(all, &r.pop3[i])
	}
	all = append(all, &r.big, &r.list)
	fmt.Fprintf(r.prog, "bench: creating %d accounts (buzon user add, default bcrypt cost)\n", len(all))
	for _, a := range all {
		pw, err := password()
		if err != nil {
			return err
		}
		a.Pass = pw
		if err := addUser(ctx, r.opts.Buzon, cfgFile, a.User, pw); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}

func password() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("bench: password: %w", err)
	}
	return "B" + hex.EncodeToString(b), nil
}

func rcpts(as []account) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.User + "@" + Domain
	}
	return out
}

// step is one row of the table (or a preparation when role is ""), or
// round `round` of `rounds` of a row, which is recorded after its last
// round as the merge of them all.
type step struct {
	role          string
	name          string
	round, rounds int
	run           func(ctx context.Context) (loadgen.Result, error)
}

// share is round i's part of total work split into n rounds, the
// remainder going to the first rounds.
func share(total, n, i int) int {
	v := total / n
	if i < total%n {
		v++
	}
	return v
}

func (r *run) scenarios(ctx context.Context, pid int, smtpAddr, pop3Addr string) error {
	p := r.p
	prog := r.opts.Progress // the scenarios' own lines; nil = none
	size := sizeLabel(p.MsgSize)
	var steps []step

	// The disk limit and the target SMTP row alternate round by round so
	// the ratio the target judges compares the same minutes of a shared
	// disk; they go first, on a fresh file system.
	rounds := p.PairRounds
	diskName := fmt.Sprintf("disk limit %dx%s w=%d, %d rounds", p.DiskOps, size, p.DiskWorkers, rounds)
	targetName := fmt.Sprintf("smtp %dx%s c=%d, %d rounds alternating with disk", p.SMTPMessages, size, p.SMTPTargetConns, rounds)
	for i := range rounds {
		ops, msgs := share(p.DiskOps, rounds, i), share(p.SMTPMessages, rounds, i)
		diskRound := fmt.Sprintf("disk limit round %d/%d", i+1, rounds)
		steps = append(steps, step{role: roleDisk, name: diskName, round: i + 1, rounds: rounds, run: func(ctx context.Context) (loadgen.Result, error) {
			// RunDisk does not know the server; its memory is sampled here.
			m := loadgen.SampleMemory(pid, 0)
			res, err := loadgen.RunDisk(ctx, loadgen.DiskConfig{
				Dir: filepath.Join(r.data, "disk-bench"), Workers: p.DiskWorkers, Ops: ops, Size: p.MsgSize,
				Progress: prog, Name: diskRound,
			})
			mem := m.Stop()
			res.Server = &mem
			return res, err
		}})
		smtpRound := fmt.Sprintf("smtp c=%d round %d/%d", p.SMTPTargetConns, i+1, rounds)
		steps = append(steps, step{role: roleSMTP, name: targetName, round: i + 1, rounds: rounds, run: func(ctx context.Context) (loadgen.Result, error) {
			return loadgen.RunSMTP(ctx, loadgen.SMTPConfig{
				Addr: smtpAddr, Messages: msgs, Size: p.MsgSize, Conns: p.SMTPTargetConns, To: rcpts(r.sinks),
				Timeout: p.Timeout, PID: pid, Progress: prog, Name: smtpRound,
			})
		}})
	}
	for _, c := range p.SMTPConns {
		if c == p.SMTPTargetConns {
			continue // measured in rounds above
		}
		name := fmt.Sprintf("smtp %dx%s c=%d", p.SMTPMessages, size, c)
		steps = append(steps, step{role: fmt.Sprintf("smtp-c%d", c), name: name, run: func(ctx context.Context) (loadgen.Result, error) {
			return loadgen.RunSMTP(ctx, loadgen.SMTPConfig{
				Addr: smtpAddr, Messages: p.SMTPMessages, Size: p.MsgSize, Conns: c, To: rcpts(r.sinks),
				Timeout: p.Timeout, PID: pid, Progress: prog, Name: name,
			})
		}})
	}
	fillName := fmt.Sprintf("fill pop3 (smtp c=%d)", p.FillConns)
	steps = append(steps, step{role: "fill-pop3", name: fillName, run: func(ctx context.Context) (loadgen.Result, error) {
		return loadgen.RunSMTP(ctx, loadgen.SMTPConfig{
			Addr: smtpAddr, Messages: p.POP3Users * p.POP3Messages, Size: p.MsgSize, Conns: p.FillConns,
			To: rcpts(r.pop3), Timeout: p.Timeout, PID: pid, Progress: prog, Name: fillName,
		})
	}})
	for _, pipe := range []int{0, p.POP3Pipeline} {
		role, name := rolePOP3, fmt.Sprintf("pop3 %dx%dx%s", p.POP3Users, p.POP3Messages, size)
		if pipe > 1 {
			role, name = rolePOP3Pipe, fmt.Sprintf("%s pipeline=%d", name, pipe)
		}
		steps = append(steps, step{role: role, name: name, run: func(ctx context.Context) (loadgen.Result, error) {
			return loadgen.RunPOP3(ctx, loadgen.POP3Config{
				Addr: pop3Addr, Accounts: r.pop3, Pipeline: pipe,
				Timeout: p.Timeout, PID: pid, Progress: prog, Name: name,
			})
		}})
	}
	large := sizeLabel(p.LargeSize)
	largeSMTP, largePOP3 := "large "+large+" smtp", "large "+large+" pop3"
	steps = append(steps,
		step{role: roleLargeSMTP, name: largeSMTP, run: func(ctx context.Context) (loadgen.Result, error) {
			return loadgen.RunSMTP(ctx, loadgen.SMTPConfig{
				Addr: smtpAddr, Messages: 1, Size: p.LargeSize, Conns: 1, To: rcpts([]account{r.big}),
				Timeout: p.Timeout, PID: pid, Progress: prog, Name: largeSMTP,
			})
		}},
		step{role: roleLargePOP3, name: largePOP3, run: func(ctx context.Context) (loadgen.Result, error) {
			return loadgen.RunPOP3(ctx, loadgen.POP3Config{
				Addr: pop3Addr, Accounts: []account{r.big},
				Timeout: p.Timeout, PID: pid, Progress: prog, Name: largePOP3,
			})
		}},
		step{name: fmt.Sprintf("fill %s with %d msgs (maildir bulk mode)", r.list.User, p.ListMessages),
			run: func(ctx context.Context) (loadgen.Result, error) {
				return loadgen.Result{}, fillMaildir(ctx, r.data, r.list.User, p.ListMessages, p.ListMsgSize)
			}},
	)
	listName := fmt.Sprintf("pop3-list %d msgs", p.ListMessages)
	steps = append(steps, step{role: roleList, name: listName, run: func(ctx context.Context) (loadgen.Result, error) {
		return loadgen.RunPOP3List(ctx, loadgen.POP3ListConfig{
			Addr: pop3Addr, Account: r.list, Sessions: p.ListSessions,
			Timeout: p.Timeout, PID: pid, Progress: prog, Name: listName,
		})
	}})
	connsName := fmt.Sprintf("conns %d held %v", p.Conns, p.ConnsHold)
	steps = append(steps, step{role: roleConns, name: connsName, run: func(ctx context.Context) (loadgen.Result, error) {
		return loadgen.RunConns(ctx, loadgen.ConnsConfig{
			SMTPAddr: smtpAddr, POP3Addr: pop3Addr, Count: p.Conns, Parallel: p.ConnsParallel, Hold: p.ConnsHold,
			Timeout: p.Timeout, PID: pid, Progress: prog, Name: connsName,
		})
	}})

	r.nsteps = len(steps)
	for _, s := range steps {
		if err := r.do(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// do runs one step: a step that fails is recorded and the suite goes on;
// a server that died or a cancelled context ends the run.
func (r *run) do(ctx context.Context, s step) error {
	r.step++
	label := s.name
	if s.rounds > 0 {
		label = fmt.Sprintf("%s (round %d/%d)", s.name, s.round, s.rounds)
	}
	fmt.Fprintf(r.prog, "bench: [%d/%d] %s\n", r.step, r.nsteps, label)
	start := time.Now()
	res, err := s.run(ctx)
	if ctx.Err() != nil {
		return fmt.Errorf("bench: %s: %w", label, ctx.Err())
	}
	if derr := r.srv.died(); derr != nil {
		return fmt.Errorf("bench: during %s: %w", label, derr)
	}
	if err != nil {
		r.rep.Failures = append(r.rep.Failures, fmt.Sprintf("%s: %v", label, err))
		fmt.Fprintf(r.prog, "bench: %s failed: %v\n", label, err)
		return nil
	}
	if s.role == "" {
		fmt.Fprintf(r.prog, "bench: %s done in %v\n", s.name, time.Since(start).Round(time.Millisecond))
		return nil
	}
	if s.rounds > 0 {
		fmt.Fprintf(r.prog, "bench: %s: %d ops, %.0f ops/s\n", label, res.Ops, res.OpsPerSec)
		r.rounds[s.role] = append(r.rounds[s.role], res)
		if s.round < s.rounds {
			return nil
		}
		done := r.rounds[s.role]
		if len(done) < s.rounds {
			// A row short of rounds no longer pairs with the other's rounds.
			r.rep.Failures = append(r.rep.Failures, fmt.Sprintf("%s: %d of %d rounds failed, no row", s.name, s.rounds-len(done), s.rounds))
			return nil
		}
		res = loadgen.Merge(s.name, done...)
	}
	r.rep.Results = append(r.rep.Results, res)
	r.rep.rows[s.role] = res
	fmt.Fprintf(r.prog, "bench: %s: %d ops, %.0f ops/s, %.1f MB/s, p99 %v, errors %d\n",
		s.name, res.Ops, res.OpsPerSec, res.MBPerSec, res.Latency.P99.Round(10*time.Microsecond), errCount(res))
	return nil
}

func errCount(res loadgen.Result) int64 {
	var n int64
	for _, v := range res.Errors {
		n += v
	}
	return n
}
