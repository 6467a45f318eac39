// Package smtp is buzon's SMTP side (SPEC §4): a github.com/emersion/go-smtp
// backend that accepts mail for local users on port 25, on submission (587,
// RFC 6409) and on implicit TLS (465, RFC 8314), checks recipients and
// senders, authenticates with PLAIN and LOGIN, optionally pipes each message
// through a transformation command and delivers it durably into Maildirs.
package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/buzon-mail/buzon/internal/accounting"
	"github.com/buzon-mail/buzon/maildir"
	"github.com/buzon-mail/buzon/users"
)

// Users is what the SMTP side needs from the user store.
type Users interface {
	Authenticate(ctx context.Context, name, password string) (users.User, error)
	Lookup(name string) (users.User, error)
}

// Delivery is one message being written to one or more Maildirs; see
// maildir.Delivery for the contract.
type Delivery interface {
	io.Writer
	Commit() ([]string, error)
	Abort() error
}

// Store is what the SMTP side needs from the Maildir store.
type Store interface {
	Begin(users ...string) (Delivery, error)
	FreeBytes() (uint64, error)
}

// Throttle is the shared failed-login throttle (internal/throttle).
type Throttle interface {
	Failure(ctx context.Context, addr net.Addr) (closeSession bool)
	Blocked(addr net.Addr) bool
	Success(addr net.Addr)
}

// Counters receives the message counters MGMT reports.
type Counters interface {
	AddAccepted(n int64)
	AddDelivered(n int64)
}

// MaildirStore adapts *maildir.Store to Store; it creates a missing Maildir
// of an existing user before delivering.
func MaildirStore(s *maildir.Store) Store { return maildirStore{s} }

type maildirStore struct{ s *maildir.Store }

func (m maildirStore) Begin(users ...string) (Delivery, error) {
	// Creating first would cost four mkdir calls per recipient and
	// message, each taking the parent directory's lock; a missing Maildir
	// is rare, so it is created only when Begin reports one.
	d, err := m.s.Begin(users...)
	switch {
	case err == nil:
		return d, nil
	case !errors.Is(err, maildir.ErrNoMaildir):
		return nil, err // not a typed nil in the interface
	}
	for _, u := range users {
		if err := m.s.Create(u); err != nil {
			return nil, err
		}
	}
	return m.s.Begin(users...)
}

func (m maildirStore) FreeBytes() (uint64, error) { return m.s.FreeBytes() }

// Reloadable holds the values that SIGHUP may change.
type Reloadable struct {
	Domains          []string
	Aliases          map[string][]string // local part → user(s)
	IdleTimeout      time.Duration       // per read and per write; 0: none
	TransformCommand []string
	TransformTimeout time.Duration
}

// Options configure a Server. Users, Store and Logger are required.
type Options struct {
	Hostname        string
	MaxMessageBytes int64
	MaxRecipients   int
	MaxLineLength   int
	MinFreeBytes    int64
	AllowInsecure   bool // plaintext AUTH from anywhere
	TrustLoopback   bool // plaintext AUTH from loopback clients
	// TLS enables STARTTLS and is required by ServeTLS; nil: no TLS.
	TLS *tls.Config
	// SpoolDir holds the temporary copy of a message being transformed
	// (under data_dir, never memory).
	SpoolDir string
	// TransformEnabled is read once per message (MGMT TRANSFORM ON|OFF).
	TransformEnabled       func() bool
	TransformMaxConcurrent int

	Reloadable

	Users    Users
	Store    Store
	Throttle Throttle // nil: no throttling
	Counters Counters // nil: not counted
	Logger   *slog.Logger
}

// Mode is the kind of listener a session arrived on.
type Mode int

const (
	// MX is port 25: mail for local users, AUTH optional.
	MX Mode = iota
	// Submission is port 587 (RFC 6409): AUTH required before MAIL.
	Submission
	// SubmissionTLS is port 465, implicit TLS (RFC 8314): AUTH required.
	SubmissionTLS
)

func (m Mode) String() string {
	switch m {
	case MX:
		return "smtp"
	case Submission:
		return "submission"
	case SubmissionTLS:
		return "submissions"
	}
	return "unknown"
}

// dynamic is the reloadable part, swapped atomically.
type dynamic struct {
	domains map[string]bool
	aliases map[string][]string
	idle    time.Duration
	tcmd    []string
	ttime   time.Duration
}

// copyBufSize is the buffer a message is copied through from go-smtp's
// reader to the delivery (which buffers 64 KiB itself).
const copyBufSize = 32 << 10

// Server serves SMTP on any number of listeners. Safe for concurrent use.
type Server struct {
	opts Options
	log  *slog.Logger
	dyn  atomic.Pointer[dynamic]
	sem  chan struct{} // transformation slots

	copyBufs sync.Pool // *[]byte of copyBufSize: message copy buffers

	ctx    context.Context // canceled when Shutdown gives up waiting
	cancel context.CancelFunc

	mu        sync.Mutex
	servers   []*gosmtp.Server
	listeners []net.Listener
	conns     map[*conn]struct{}
	shutdown  bool
	wg        sync.WaitGroup // one per accepted connection
}

// New returns a Server.
func New(opts Options) (*Server, error) {
	if opts.Users == nil || opts.Store == nil {
		return nil, errors.New("smtp: Users and Store are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	if opts.TransformMaxConcurrent < 1 {
		opts.TransformMaxConcurrent = 1
	}
	if opts.TransformEnabled == nil {
		opts.TransformEnabled = func() bool { return false }
	}
	s := &Server{
		opts:  opts,
		log:   opts.Logger,
		sem:   make(chan struct{}, opts.TransformMaxConcurrent),
		conns: make(map[*conn]struct{}),
	}
	s.copyBufs.New = func() any { b := make([]byte, copyBufSize); return &b }
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.Reload(opts.Reloadable)
	return s, nil
}

// Reload applies new reloadable values; sessions see them at their next
// command.
func (s *Server) Reload(r Reloadable) {
	d := &dynamic{
		domains: make(map[string]bool, len(r.Domains)),
		aliases: make(map[string][]string, len(r.Aliases)),
		idle:    r.IdleTimeout,
		tcmd:    append([]string(nil), r.TransformCommand...),
		ttime:   r.TransformTimeout,
	}
	for _, dom := range r.Domains {
		d.domains[strings.ToLower(strings.TrimSuffix(dom, "."))] = true
	}
	for k, v := range r.Aliases {
		us := make([]string, len(v))
		for i, u := range v {
			us[i] = strings.ToLower(u)
		}
		d.aliases[strings.ToLower(k)] = us
	}
	if d.ttime <= 0 {
		d.ttime = 30 * time.Second
	}
	s.dyn.Store(d)
}

// Serve serves port-25 SMTP on l until Shutdown.
func (s *Server) Serve(l net.Listener) error { return s.serve(l, MX) }

// ServeSubmission serves submission (STARTTLS, AUTH required) on l.
func (s *Server) ServeSubmission(l net.Listener) error { return s.serve(l, Submission) }

// ServeTLS serves submission over implicit TLS on l with Options.TLS. l may
// be a plain listener or a tls.NewListener (whose connections have not
// shaken hands yet): the server does the handshake itself, on top of its
// per-read deadline, so that a slow handshake also times out.
func (s *Server) ServeTLS(l net.Listener) error {
	if s.opts.TLS == nil {
		return errors.New("smtp: ServeTLS needs a TLS configuration")
	}
	return s.serve(l, SubmissionTLS)
}

func (s *Server) serve(l net.Listener, mode Mode) error {
	gs := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		return s.newSession(c, mode)
	}))
	gs.Domain = s.opts.Hostname
	gs.MaxMessageBytes = s.opts.MaxMessageBytes
	gs.MaxRecipients = s.opts.MaxRecipients
	gs.MaxLineLength = s.opts.MaxLineLength
	// The session decides per connection whether plaintext AUTH is allowed
	// (SPEC §4): AuthMechanisms is empty where it is not, so go-smtp does
	// not advertise AUTH there, and Auth answers 538 5.7.11.
	gs.AllowInsecureAuth = true
	gs.EnableSMTPUTF8 = true
	gs.TLSConfig = s.opts.TLS
	gs.ErrorLog = slogPrintf{s.log}
	// ReadTimeout/WriteTimeout stay 0: go-smtp sets its read deadline once
	// per command line, so a long DATA would be cut off; conn sets one per
	// read and per write instead (RFC 5321 §4.5.3.2 times out inactivity).

	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		l.Close()
		return gosmtp.ErrServerClosed
	}
	s.servers = append(s.servers, gs)
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()

	err := gs.Serve(&listener{Listener: l, s: s, mode: mode})
	s.mu.Lock()
	closing := s.shutdown
	s.mu.Unlock()
	if closing || errors.Is(err, gosmtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, lets open sessions finish until ctx ends, then
// closes them (a message not yet acknowledged is not delivered: the client
// retries) and waits for their goroutines.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	servers := append([]*gosmtp.Server(nil), s.servers...)

	listeners := append([]net.Listener(nil), s.listeners...)
	s.mu.Unlock()

	// go-smtp's Shutdown closes its listeners and waits for its connection
	// goroutines; closing ours too covers a Serve that has not registered
	// its listener with go-smtp yet.
	for _, l := range listeners {
		l.Close()
	}
	var gsDone []chan struct{}
	for _, gs := range servers {
		ch := make(chan struct{})
		gsDone = append(gsDone, ch)
		go func() { defer close(ch); _ = gs.Shutdown(context.Background()) }()
	}
	waited := make(chan struct{})
	go func() { s.wg.Wait(); close(waited) }()
	var err error
	select {
	case <-waited:
	case <-ctx.Done():
		s.cancel() // kills running transformations
		s.mu.Lock()
		for c := range s.conns {
			c.Conn.Close()
		}
		s.mu.Unlock()
		<-waited
		err = ctx.Err()
	}
	for _, ch := range gsDone {
		<-ch
	}
	s.cancel()
	return err
}

// Refuse is the accounting.Refuser for SMTP listeners (SPEC §4).
func Refuse(hostname string) accounting.Refuser {
	return func(w io.Writer, why accounting.Reason) {
		switch why {
		case accounting.Paused:
			fmt.Fprintf(w, "421 4.3.2 %s Service paused, try again later\r\n", hostname)
		default:
			fmt.Fprintf(w, "421 4.7.0 %s Too many connections, try again later\r\n", hostname)
		}
	}
}

// Refuse is the refusal for this server's hostname.
func (s *Server) Refuse(w io.Writer, why accounting.Reason) { Refuse(s.opts.Hostname)(w, why) }

// slogPrintf routes go-smtp's internal error log to slog.
type slogPrintf struct{ l *slog.Logger }

func (p slogPrintf) Printf(format string, v ...any) {
	p.l.Debug("smtp connection", "detail", fmt.Sprintf(format, v...))
}
func (p slogPrintf) Println(v ...any) { p.l.Debug("smtp connection", "detail", fmt.Sprint(v...)) }
