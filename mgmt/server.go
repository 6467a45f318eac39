// Package mgmt implements buzon's management protocol (SPEC §7): a
// line-based TCP protocol through which an administrator reads the server's
// figures, changes its run-time limits, pauses mail service and manages
// accounts. The client side lives in mgmt/client.
package mgmt

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/buzon-mail/buzon/users"
)

// Greeting is the first line a client reads; its "1.0" is the protocol
// version admin_monitor checks.
const Greeting = "+OK buzon MGMT " + Version + " ready"

// Version is the protocol version announced in the greeting.
const Version = "1.0"

// MaxSessions is the number of MGMT sessions SPEC §7 allows at once; the
// accounting listener enforces it.
const MaxSessions = 16

// maxBadLines consecutive bad lines close the session (SPEC §7).
const maxBadLines = 10

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("mgmt: server closed")

// Config holds the server's dependencies and settings.
type Config struct {
	Users    UserStore
	Mail     MailStore
	Stats    Stats
	Pause    Pauser
	Runtime  Runtime
	Throttle Throttler
	// TLS enables STLS; nil when tls.* is not configured.
	TLS *tls.Config
	// DeletedDir receives the Maildirs of deleted users (data_dir/deleted).
	DeletedDir string
	// TransformConfigured tells whether transform.command is set; it changes
	// on reload through SetTransformConfigured.
	TransformConfigured bool
	LoginTimeout        time.Duration // whole AUTH phase; 0 = none
	IdleTimeout         time.Duration // per read and write after login; 0 = none
	AllowInsecure       bool          // auth.allow_insecure
	TrustLoopback       bool          // auth.trust_loopback
	// RandomPassword makes RESET_USER_PASSWORD's password; nil means
	// users.RandomPassword.
	RandomPassword func() string
	Logger         *slog.Logger
}

// Server serves MGMT sessions. Create it with New; Serve may be called for
// several listeners; Shutdown stops them all.
type Server struct {
	cfg Config
	log *slog.Logger

	transformConfigured atomic.Bool
	loginTimeout        atomic.Int64
	idleTimeout         atomic.Int64

	mu        sync.Mutex
	closing   bool
	done      chan struct{}
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
}

// New returns a server for cfg.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RandomPassword == nil {
		cfg.RandomPassword = users.RandomPassword
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		done:      make(chan struct{}),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[net.Conn]struct{}),
	}
	s.transformConfigured.Store(cfg.TransformConfigured)
	s.SetTimeouts(cfg.LoginTimeout, cfg.IdleTimeout)
	return s
}

// SetTransformConfigured records whether transform.command is set (SIGHUP).
func (s *Server) SetTransformConfigured(ok bool) { s.transformConfigured.Store(ok) }

// SetTimeouts changes limits.login_timeout and limits.idle_timeout for
// reads and writes that start from now on (SIGHUP).
func (s *Server) SetTimeouts(login, idle time.Duration) {
	s.loginTimeout.Store(int64(login))
	s.idleTimeout.Store(int64(idle))
}

// Serve accepts sessions on l until Shutdown; it always returns an error,
// ErrServerClosed after Shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()

	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			if retryable(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff) // accept errors are transient (EMFILE); do not spin
				continue
			}
			return fmt.Errorf("mgmt accept: %w", err)
		}
		backoff = 0
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// retryable reports accept errors that pass, such as running out of file
// descriptors (EMFILE) or a client resetting before accept.
func retryable(err error) bool {
	var t interface{ Temporary() bool }
	if errors.As(err, &t) && t.Temporary() {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Shutdown stops accepting, ends idle sessions and waiting TIMEOUTs at once,
// lets sessions busy with a command finish it, and closes whatever is left
// when ctx ends. A pause in progress is not ended: it runs out on its own.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		close(s.done)
	}
	for l := range s.listeners {
		l.Close()
	}
	clear(s.listeners)
	// A session between commands is blocked in a read: wake it. armRead
	// refuses to re-arm once closing is set, so none can slip through.
	for c := range s.conns {
		_ = c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()

	finished := make(chan struct{})
	go func() { s.wg.Wait(); close(finished) }()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-finished
		return ctx.Err()
	}
}

func (s *Server) serveConn(raw net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, raw)
		s.mu.Unlock()
		raw.Close()
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	ss := &session{
		srv:   s,
		raw:   raw,
		conn:  raw,
		br:    bufio.NewReaderSize(raw, MaxLineLength),
		bw:    bufio.NewWriter(raw),
		ctx:   ctx,
		start: time.Now(),
		log:   s.log.With("remote", raw.RemoteAddr().String()),
	}
	ss.serve()
}

// Sessions returns the number of open sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// armRead sets the deadline of the next read, unless the server is shutting
// down (then the session must end).
func (s *Server) armRead(c net.Conn, deadline time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	_ = c.SetReadDeadline(deadline)
	return true
}

// session is one MGMT connection.
type session struct {
	srv   *Server
	raw   net.Conn // the TCP connection, also after STLS
	conn  net.Conn // raw, or the *tls.Conn on top of it
	br    *bufio.Reader
	bw    *bufio.Writer
	ctx   context.Context
	start time.Time
	log   *slog.Logger

	tls     bool
	active  bool   // ACTIVE phase: logged in
	pending string // name given by USER, waiting for PASS
	admin   string // logged-in admin's canonical name
	bad     int    // consecutive bad lines
}

var errEndSession = errors.New("mgmt: end of session")

func (ss *session) serve() {
	ss.reply(Greeting)
	if ss.flush() != nil {
		return
	}
	for {
		line, tooLong, err := ss.readLine()
		if err != nil {
			return
		}
		var end bool
		if tooLong {
			end = ss.badLine(reasonLineTooLong)
		} else {
			end = ss.handle(line)
		}
		if ss.flush() != nil || end {
			return
		}
	}
}

// deadline is when the next read or write must be done by: the end of the
// login time in the AUTH phase, the idle time from now in the ACTIVE phase.
func (ss *session) deadline() time.Time {
	if !ss.active {
		if d := time.Duration(ss.srv.loginTimeout.Load()); d > 0 {
			return ss.start.Add(d)
		}
		return time.Time{}
	}
	if d := time.Duration(ss.srv.idleTimeout.Load()); d > 0 {
		return time.Now().Add(d)
	}
	return time.Time{}
}

// readLine reads one line, line end included. An overlong line is read to
// its end and thrown away (tooLong); the session goes on (SPEC §7).
func (ss *session) readLine() (line string, tooLong bool, err error) {
	if !ss.srv.armRead(ss.conn, ss.deadline()) {
		return "", false, errEndSession
	}
	b, err := ss.br.ReadSlice('\n')
	if err == nil {
		return string(b), false, nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return "", false, err // EOF within a line: the client is gone
	}
	// Whatever its length, the line is thrown away in buffer-sized pieces
	// (no memory grows); the login time or the idle time still bounds how
	// long a client may keep streaming it.
	for errors.Is(err, bufio.ErrBufferFull) {
		if !ss.srv.armRead(ss.conn, ss.deadline()) {
			return "", false, errEndSession
		}
		_, err = ss.br.ReadSlice('\n')
	}
	if err != nil {
		return "", false, err
	}
	return "", true, nil
}

func (ss *session) reply(line string) {
	ss.bw.WriteString(line)
	ss.bw.WriteString("\r\n")
}

// data writes a multi-line success: "+OK CMD", the lines dot-stuffed, ".".
func (ss *session) data(cmd string, lines ...string) {
	ss.reply("+OK " + cmd)
	for _, l := range lines {
		if strings.HasPrefix(l, ".") {
			l = "." + l // dot-stuffing, as RFC 1939 §3 does for multi-line replies
		}
		ss.reply(l)
	}
	ss.reply(".")
}

// fail answers a failure. In the AUTH phase every failure is a bare "-ERR"
// (SPEC §7), so that nothing before login tells a prober why; only the
// framing rule's LINE TOO LONG is sent in either phase. The reason still
// goes to the debug log (it never holds an argument).
func (ss *session) fail(reason string) {
	if !ss.active && reason != reasonLineTooLong {
		ss.log.Debug("mgmt: refused before login", "reason", reason)
		ss.reply("-ERR")
		return
	}
	ss.reply("-ERR " + reason)
}

func (ss *session) flush() error {
	if ss.bw.Buffered() == 0 {
		return nil
	}
	_ = ss.conn.SetWriteDeadline(ss.deadline())
	return ss.bw.Flush()
}

// badLine answers a bad line and reports whether the session must end.
func (ss *session) badLine(reason string) (end bool) {
	ss.bad++
	if ss.bad >= maxBadLines {
		ss.fail(reasonTooManyBad)
		ss.log.Info("mgmt: too many bad commands, closing")
		return true
	}
	ss.fail(reason)
	return false
}

// handle processes one line and reports whether the session must end.
func (ss *session) handle(line string) (end bool) {
	name, args, err := Parse(line)
	if err != nil {
		return ss.badLine(reasonBadLine)
	}
	table := authCommands
	if ss.active {
		table = activeCommands
	}
	cmd, ok := lookup(table, name)
	if !ok {
		return ss.badLine(reasonUnknown)
	}
	if len(args) < cmd.minArgs || len(args) > cmd.maxArgs {
		reason := cmd.badArgs
		if reason == "" {
			reason = reasonBadArgs
		}
		return ss.badLine(reason)
	}
	ss.bad = 0
	if !ss.active {
		return ss.authCommand(cmd.name, args)
	}
	// Never log arguments (SPEC §6): they hold passwords, and names and
	// values are no business of the log either. The admin is the session's
	// canonical account name, which every line carries for the audit trail.
	ss.log.Info("mgmt command", "user", ss.admin, "command", cmd.name)
	if cmd.name != "QUIT" && !ss.stillAdmin() {
		ss.fail(reasonAuthRequired)
		return true
	}
	return ss.activeCommand(cmd.name, args)
}

// stillAdmin re-checks the logged-in account: `buzon user del` or a
// demotion in another process takes effect at the next command.
func (ss *session) stillAdmin() bool {
	u, err := ss.srv.cfg.Users.Lookup(ss.admin)
	return err == nil && u.Admin
}

// capa lists the commands with their arguments (SPEC §7). Before login it
// is the whole command list, so that a client learns the protocol before
// it authenticates: the AUTH commands (STLS only while it can be used),
// then the ACTIVE ones. After login it is the ACTIVE commands.
func (ss *session) capa() {
	var lines []string
	if !ss.active {
		for _, c := range authCommands {
			if c.name == "QUIT" || c.name == "STLS" && !ss.tlsAvailable() {
				continue
			}
			lines = append(lines, c.synopsis)
		}
	}
	for _, c := range activeCommands {
		if !ss.active && c.name == "CAPA" {
			continue // listed first already
		}
		lines = append(lines, c.synopsis)
	}
	ss.data("CAPA", lines...)
}

func (ss *session) tlsAvailable() bool { return ss.srv.cfg.TLS != nil && !ss.tls }

func (ss *session) authCommand(name string, args []string) (end bool) {
	switch name {
	case "CAPA":
		ss.capa()
	case "QUIT":
		ss.reply("+OK GOODBYE")
		return true
	case "STLS":
		return ss.stls()
	case "USER":
		// Always +OK: whether the name exists is only revealed by PASS, and
		// then only together with the password.
		ss.pending = args[0]
		ss.reply("+OK USER")
	case "PASS":
		return ss.pass(args[0])
	}
	return false
}

// stls upgrades to TLS (RFC 2595 §4, as POP3 STLS).
func (ss *session) stls() (end bool) {
	if !ss.tlsAvailable() {
		ss.fail("TLS NOT AVAILABLE")
		return false
	}
	// Anything the client sent after STLS before seeing our answer was
	// written in plaintext and could have been injected by a third party
	// (CVE-2011-0411 class): refuse to carry it into the TLS session.
	if ss.br.Buffered() > 0 {
		ss.log.Warn("mgmt: data after STLS, closing")
		return true
	}
	ss.reply("+OK Begin TLS")
	if ss.flush() != nil {
		return true
	}
	tc := tls.Server(ss.raw, ss.srv.cfg.TLS)
	_ = ss.raw.SetDeadline(ss.deadline())
	if err := tc.HandshakeContext(ss.ctx); err != nil {
		ss.log.Info("mgmt: TLS handshake failed", "err", err)
		return true
	}
	_ = ss.raw.SetDeadline(time.Time{})
	ss.conn = tc
	ss.tls = true
	ss.br = bufio.NewReaderSize(tc, MaxLineLength)
	ss.bw = bufio.NewWriter(tc)
	ss.pending = ""
	return false
}

func isLoopback(a net.Addr) bool {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.IsLoopback()
	}
	return false
}

func (ss *session) pass(password string) (end bool) {
	srv := ss.srv
	cfg := srv.cfg
	if ss.pending == "" {
		ss.fail("USER FIRST")
		return false
	}
	name := ss.pending
	ss.pending = ""
	remote := ss.raw.RemoteAddr()
	if !ss.tls && !cfg.AllowInsecure && !(cfg.TrustLoopback && isLoopback(remote)) {
		ss.fail("PLAINTEXT AUTHENTICATION DISALLOWED WITHOUT TLS")
		return false
	}
	if cfg.Throttle.Blocked(remote) {
		ss.authFailed("blocked")
		ss.fail("BLOCKED")
		return true
	}
	u, err := cfg.Users.Authenticate(ss.ctx, name, password)
	if err == nil && u.Admin {
		cfg.Throttle.Success(remote)
		ss.active = true
		ss.admin = u.Name
		ss.log.Info("mgmt login", "user", u.Name)
		ss.reply("+OK PASS")
		return false
	}
	ss.authFailed("bad credentials")
	closeIt := cfg.Throttle.Failure(ss.ctx, remote) // the delay (SPEC §7)
	ss.fail("AUTHENTICATION FAILED")
	return closeIt
}

// authFailed logs a failed login in one fixed format with the client
// address, usable by fail2ban (as SMTP and POP3 do). The name is not logged:
// it may be a mistyped password.
func (ss *session) authFailed(reason string) {
	ip := ss.raw.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	ss.srv.log.Warn("mgmt auth failed", "ip", ip, "reason", reason)
}

// parseCount reads a decimal argument: digits only, no sign.
func parseCount(s string) (int, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func onOff(b bool) string {
	if b {
		return "ON"
	}
	return "OFF"
}

func (ss *session) activeCommand(name string, args []string) (end bool) {
	cfg := ss.srv.cfg
	switch name {
	case "QUIT":
		ss.reply("+OK GOODBYE")
		return true
	case "NOOP":
		ss.data(name)
	case "CAPA":
		ss.capa()
	case "HISTORIC_CONNEC":
		st := cfg.Stats.Snapshot()
		ss.data(name, "HISTORIC CONNECTIONS: "+itoa(st.Historic))
	case "LIVE_CONNEC":
		st := cfg.Stats.Snapshot()
		ss.data(name, "LIVE CONNECTIONS: "+itoa(st.Live))
	case "BYTES_TRANS":
		st := cfg.Stats.Snapshot()
		ss.data(name, "BYTES SENT: "+itoa(st.BytesSent), "BYTES RECEIVED: "+itoa(st.BytesReceived))
	case "USERS":
		list, err := cfg.Users.List()
		if err != nil {
			return ss.internal(name, err)
		}
		lines := []string{"USER COUNT: " + strconv.Itoa(len(list))}
		for _, u := range list {
			lines = append(lines, u.Name)
		}
		ss.data(name, lines...)
	case "STATUS":
		return ss.status()
	case "MAX_USERS":
		n, ok := parseCount(args[0])
		if !ok || n < 1 {
			ss.fail(reasonInvalidMaxUsers)
			return false
		}
		count, err := cfg.Users.Count()
		if err != nil {
			return ss.internal(name, err)
		}
		if n < count {
			ss.fail(reasonInvalidMaxUsers)
			return false
		}
		if err := cfg.Runtime.SetMaxUsers(n); err != nil {
			return ss.internal(name, err)
		}
		ss.data(name, "MAX USERS CHANGED SUCCESSFULLY")
	case "MAX_CONNEC":
		n, ok := parseCount(args[0])
		if !ok || n < 1 || n > 1000000 {
			ss.fail(reasonInvalidMaxConns)
			return false
		}
		// The accounting listener reads the value at every accept: open
		// sessions are never cut, the next connection sees the new limit.
		if err := cfg.Runtime.SetMaxConnections(n); err != nil {
			return ss.internal(name, err)
		}
		ss.data(name, "MAX CONNECTIONS CHANGED SUCCESSFULLY")
	case "TIMEOUT":
		return ss.timeout(args[0])
	case "RESUME":
		if !cfg.Pause.Resume() {
			ss.fail(reasonNotPaused)
			return false
		}
		ss.log.Info("mgmt: mail service resumed", "user", ss.admin)
		ss.data(name, "SERVICE RESUMED")
	case "ADD_USER":
		return ss.addUser(args[0], args[1])
	case "DELETE_USER":
		return ss.deleteUser(args[0])
	case "RESET_USER_PASSWORD":
		u, err := cfg.Users.Lookup(args[0])
		if errors.Is(err, users.ErrNotFound) || errors.Is(err, users.ErrInvalidUsername) {
			ss.fail(reasonUserNotFound)
			return false
		}
		if err != nil {
			return ss.internal(name, err)
		}
		pw := cfg.RandomPassword()
		if err := cfg.Users.SetPassword(u.Name, pw); err != nil {
			if errors.Is(err, users.ErrNotFound) {
				ss.fail(reasonUserNotFound)
				return false
			}
			return ss.internal(name, err)
		}
		ss.data(name, "PASSWORD RESET SUCCESSFULLY", "NEW PASSWORD: "+pw)
	case "CHANGE_PASSWORD":
		return ss.changePassword(args[0], args[1])
	case "TRANSFORM":
		if len(args) == 1 {
			var on bool
			switch strings.ToUpper(args[0]) {
			case "ON":
				on = true
			case "OFF":
			default:
				ss.fail(reasonBadArgs)
				return false
			}
			if on && !ss.srv.transformConfigured.Load() {
				ss.fail(reasonNoTransform)
				return false
			}
			if err := cfg.Runtime.SetTransform(on); err != nil {
				return ss.internal(name, err)
			}
		}
		ss.data(name, "TRANSFORMATIONS: "+onOff(cfg.Runtime.TransformEnabled()))
	}
	return false
}

// internal answers a failure of the server itself: the client gets no
// detail, the log gets the error.
func (ss *session) internal(cmd string, err error) (end bool) {
	ss.log.Error("mgmt command failed", "command", cmd, "err", err)
	ss.fail(reasonInternal)
	return false
}

func (ss *session) status() (end bool) {
	cfg := ss.srv.cfg
	st := cfg.Stats.Snapshot()
	count, err := cfg.Users.Count()
	if err != nil {
		return ss.internal("STATUS", err)
	}
	left := cfg.Pause.Remaining()
	leftSec := int64((left + time.Second - 1) / time.Second)
	var uptime int64
	if !st.Started.IsZero() {
		uptime = int64(time.Since(st.Started) / time.Second)
	}
	ss.data("STATUS",
		"HISTORIC CONNECTIONS: "+itoa(st.Historic),
		"LIVE CONNECTIONS: "+itoa(st.Live),
		"REJECTED CONNECTIONS: "+itoa(st.Rejected),
		"BYTES SENT: "+itoa(st.BytesSent),
		"BYTES RECEIVED: "+itoa(st.BytesReceived),
		"SMTP HISTORIC CONNECTIONS: "+itoa(st.SMTPHistoric),
		"SMTP LIVE CONNECTIONS: "+itoa(st.SMTPLive),
		"POP3 HISTORIC CONNECTIONS: "+itoa(st.POP3Historic),
		"POP3 LIVE CONNECTIONS: "+itoa(st.POP3Live),
		"MGMT LIVE CONNECTIONS: "+itoa(st.MGMTLive),
		"MESSAGES ACCEPTED: "+itoa(st.MessagesAccepted),
		"MESSAGES DELIVERED: "+itoa(st.MessagesDelivered),
		"MESSAGES RETRIEVED: "+itoa(st.MessagesRetrieved),
		"MESSAGES DELETED: "+itoa(st.MessagesDeleted),
		"TOTAL USERS: "+strconv.Itoa(count),
		"MAX USERS: "+strconv.Itoa(cfg.Runtime.MaxUsers()),
		"MAX CONNECTIONS: "+strconv.Itoa(cfg.Runtime.MaxConnections()),
		"TRANSFORMATIONS: "+onOff(cfg.Runtime.TransformEnabled()),
		"PAUSED SECONDS LEFT: "+itoa(leftSec),
		"UPTIME SECONDS: "+itoa(uptime),
	)
	return false
}

// timeout pauses mail service and answers only when the pause ends (SPEC
// §7). Meanwhile the session processes nothing else; the pause itself does
// not depend on this session: it ends on time if the admin goes away.
func (ss *session) timeout(arg string) (end bool) {
	n, ok := parseCount(arg)
	if !ok || n < 1 || n > 86400 {
		ss.fail(reasonInvalidTimeout)
		return false
	}
	ss.log.Info("mgmt: mail service paused", "user", ss.admin)
	ended := ss.srv.cfg.Pause.Pause(time.Duration(n) * time.Second)
	if ss.flush() != nil {
		return true
	}
	// Watch the connection while waiting so a vanished admin frees its
	// session slot now rather than when the pause ends. No deadline: the
	// admin is waiting for us, not idle.
	if !ss.srv.armRead(ss.conn, time.Time{}) {
		return true
	}
	gone := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		if _, err := ss.br.Peek(1); err != nil && !isTimeout(err) {
			close(gone)
		}
	}()
	stop := func() {
		_ = ss.conn.SetReadDeadline(time.Now())
		<-watched
	}
	select {
	case <-ended:
		stop()
		ss.data("TIMEOUT", "TIMEOUT COMPLETED")
		return false
	case <-gone:
		<-watched
		return true
	case <-ss.srv.done:
		stop()
		return true
	}
}

// isTimeout tells a stopped watcher (deadline) from a vanished client.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (ss *session) addUser(name, password string) (end bool) {
	cfg := ss.srv.cfg
	// The store checks the name, the password, existence and MAX_USERS
	// (the run-time value) under its lock, so that two sessions adding at
	// once cannot overshoot the limit.
	err := cfg.Users.Add(name, password, false)
	switch {
	case err == nil:
	case errors.Is(err, users.ErrExists):
		ss.fail(reasonUserExists)
		return false
	case errors.Is(err, users.ErrMaxUsers):
		ss.fail(reasonMaxUsersReached)
		return false
	case errors.Is(err, users.ErrInvalidUsername), errors.Is(err, users.ErrReserved):
		ss.fail(reasonInvalidUsername)
		return false
	case errors.Is(err, users.ErrInvalidPassword):
		ss.fail(reasonInvalidPassword)
		return false
	default:
		return ss.internal("ADD_USER", err)
	}
	u, err := cfg.Users.Lookup(name)
	if err != nil {
		return ss.internal("ADD_USER", err)
	}
	if err := cfg.Mail.Create(u.Name); err != nil {
		// Without a Maildir the account could not receive mail: undo it.
		if derr := cfg.Users.Delete(u.Name); derr != nil {
			ss.log.Error("mgmt: undo ADD_USER", "err", derr)
		}
		return ss.internal("ADD_USER", err)
	}
	ss.log.Info("mgmt: user added", "by", ss.admin)
	ss.data("ADD_USER", "USER ADDED SUCCESSFULLY")
	return false
}

func (ss *session) deleteUser(name string) (end bool) {
	cfg := ss.srv.cfg
	u, err := cfg.Users.Lookup(name)
	if errors.Is(err, users.ErrNotFound) || errors.Is(err, users.ErrInvalidUsername) {
		ss.fail(reasonUserNotFound)
		return false
	}
	if err != nil {
		return ss.internal("DELETE_USER", err)
	}
	if u.Name == ss.admin {
		ss.fail(reasonAdminNoDelete)
		return false
	}
	// Holding the maildrop lock across the deletion keeps a POP3 login from
	// slipping in between the check and the archive.
	release, err := cfg.Mail.Hold(u.Name)
	if errors.Is(err, ErrInUse) {
		ss.fail(reasonUserInUse)
		return false
	}
	if err != nil {
		return ss.internal("DELETE_USER", err)
	}
	defer release()
	switch err := cfg.Users.Delete(u.Name); {
	case err == nil:
	case errors.Is(err, users.ErrNotFound):
		ss.fail(reasonUserNotFound)
		return false
	case errors.Is(err, users.ErrLastAdmin):
		ss.fail(reasonAdminNoDelete)
		return false
	default:
		return ss.internal("DELETE_USER", err)
	}
	if err := cfg.Mail.Archive(u.Name, cfg.DeletedDir); err != nil {
		// The account is gone; its mail stays where it was for the operator.
		ss.log.Error("mgmt: archive maildir", "err", err)
	}
	ss.log.Info("mgmt: user deleted", "by", ss.admin)
	ss.data("DELETE_USER", "USER DELETED SUCCESSFULLY")
	return false
}

func (ss *session) changePassword(oldPW, newPW string) (end bool) {
	cfg := ss.srv.cfg
	remote := ss.raw.RemoteAddr()
	if _, err := cfg.Users.Authenticate(ss.ctx, ss.admin, oldPW); err != nil {
		ss.authFailed("bad old password")
		closeIt := cfg.Throttle.Failure(ss.ctx, remote)
		ss.fail(reasonInvalidPassword)
		return closeIt
	}
	switch err := cfg.Users.SetPassword(ss.admin, newPW); {
	case err == nil:
	case errors.Is(err, users.ErrInvalidPassword):
		ss.fail(reasonInvalidPassword)
		return false
	default:
		return ss.internal("CHANGE_PASSWORD", err)
	}
	ss.log.Info("mgmt: password changed", "user", ss.admin)
	ss.data("CHANGE_PASSWORD", "PASSWORD CHANGED SUCCESSFULLY")
	return false
}
