package pop3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/buzon-mail/buzon/internal/idle"
	"github.com/buzon-mail/buzon/maildir"
	"github.com/buzon-mail/buzon/users"
)

// Limits of SPEC §5.
const (
	maxCommandLine = 1024 // octets including CRLF (RFC 2449 §4 asks ≥ 255)
	maxSASLLine    = 4096 // octets including CRLF
	maxBadCommands = 10   // consecutive bad commands before the session closes
	maxDiscard     = 64 << 10
)

// RFC 1939 states.
type state int

const (
	stateAuthorization state = iota
	stateTransaction
	stateUpdate
)

var (
	errLineTooLong = errors.New("line too long")
	// errLineFlood: more than maxDiscard octets without a line end; the
	// session is closed rather than reading on for ever.
	errLineFlood  = errors.New("line too long, closing")
	errEndSession = errors.New("session ended")
)

type session struct {
	srv *Server
	raw net.Conn // the socket, closed to cut the session off
	// conn gives every read and write its own deadline of
	// limits.idle_timeout once logged in (RFC 1939 §3: an inactivity
	// timer); before login its timeout is zero and the absolute login
	// deadline set on the wrapped connection applies.
	conn   *idle.Conn
	r      *bufio.Reader
	w      output
	remote net.Addr
	tls    bool
	ctx    context.Context

	state   state
	user    string // name given with USER
	login   string // authenticated user
	drop    Maildrop
	lock    Releaser
	msgs    []maildir.Message
	deleted []bool
	bad     int
	dw      dotWriter
	num     [24]byte // room to format a number without allocating

	retrieved, removed int
	bytes              int64
	end                string // how the session ended, for the log

	killOnce sync.Once
	killed   atomic.Bool // cut off by Shutdown
}

func (srv *Server) newSession(c net.Conn) *session {
	s := &session{srv: srv, raw: c, remote: c.RemoteAddr()}
	if tc, ok := c.(*tls.Conn); ok {
		s.raw = tc.NetConn()
	}
	s.conn = idle.New(c, 0)
	// Room for one command line: an idle connection holds this buffer
	// while it waits. Longer SASL lines are read in pieces (readLine).
	s.r = bufio.NewReaderSize(s.conn, maxCommandLine)
	s.w = output{w: s.conn, pool: &srv.bufs}
	return s
}

// kill cuts the session off (Shutdown after the grace period).
func (s *session) kill() {
	s.killOnce.Do(func() {
		s.killed.Store(true)
		s.raw.Close()
	})
}

func (s *session) serve(ctx context.Context) {
	s.ctx = ctx
	start := time.Now()
	defer func() {
		if s.lock != nil {
			_ = s.lock.Release()
			s.lock = nil
		}
		s.conn.Close()
		s.w.release()
		if s.end == "" {
			s.end = "closed"
		}
		s.srv.logger().Info("pop3 session",
			"remote", s.remote.String(), "user", s.login,
			"retrieved", s.retrieved, "deleted", s.removed, "bytes", s.bytes,
			"duration", time.Since(start).Round(time.Millisecond), "end", s.end)
	}()

	login, _ := s.srv.timeouts()
	// limits.login_timeout: an absolute deadline until login, covering the
	// implicit-TLS handshake and any STLS handshake too.
	// Set on the wrapped connection: idle.Conn's own SetDeadline would be
	// replaced by its next Read.
	_ = s.conn.Conn.SetDeadline(start.Add(login))
	if tc, ok := s.conn.Conn.(*tls.Conn); ok {
		if err := tc.HandshakeContext(ctx); err != nil {
			s.end = "tls handshake failed"
			return
		}
		s.tls = true
	}
	host := s.srv.Hostname
	if host == "" {
		host = "buzon"
	}
	s.reply("+OK " + host + " POP3 server ready")
	for {
		line, err := s.readLine(maxCommandLine)
		if errors.Is(err, errLineTooLong) {
			if s.badCommand("Line too long") {
				return
			}
			continue
		}
		if err != nil {
			s.endFromError(err)
			return
		}
		if err := s.dispatch(line); err != nil {
			if !errors.Is(err, errEndSession) {
				s.endFromError(err)
			}
			return
		}
	}
}

func (s *session) endFromError(err error) {
	if s.end != "" {
		return
	}
	var ne net.Error
	switch {
	case s.killed.Load():
		s.end = "server shutdown"
	case errors.Is(err, errLineFlood):
		s.fail("Line too long, closing connection")
		_ = s.w.Flush()
		s.end = "line too long"
	case errors.As(err, &ne) && ne.Timeout():
		if s.state == stateAuthorization {
			s.end = "login timeout"
		} else {
			s.end = "idle timeout"
		}
	case errors.Is(err, io.EOF):
		s.end = "client disconnected"
	default:
		s.end = "connection error"
	}
	if s.state == stateTransaction {
		s.end += " (no deletion)"
	}
}

// readLine returns the next line without its CRLF or LF. Replies still
// buffered are flushed first unless a whole command is already waiting:
// pipelined commands (RFC 2449 PIPELINING) get their replies in one write.
func (s *session) readLine(limit int) (string, error) {
	if buf, _ := s.r.Peek(s.r.Buffered()); bytes.IndexByte(buf, '\n') < 0 {
		if err := s.w.Flush(); err != nil {
			return "", err
		}
	}
	frag, err := s.r.ReadSlice('\n')
	if err == nil && len(frag) <= limit {
		// The usual case: the whole line is in the buffer; one copy.
		return string(bytes.TrimSuffix(frag[:len(frag)-1], []byte("\r"))), nil
	}
	var line []byte
	discarded := 0
	for {
		if discarded == 0 && len(line)+len(frag) <= limit {
			line = append(line, frag...)
		} else {
			discarded += len(line) + len(frag)
			line = line[:0]
			if discarded > maxDiscard {
				return "", errLineFlood
			}
		}
		if err == bufio.ErrBufferFull {
			frag, err = s.r.ReadSlice('\n')
			continue
		}
		if err != nil {
			return "", err
		}
		break
	}
	if discarded > 0 {
		return "", errLineTooLong
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
	return string(line), nil
}

func (s *session) reply(line string) {
	s.w.WriteString(line)
	s.w.WriteString("\r\n")
}

func (s *session) ok(msg string) {
	s.bad = 0
	if msg == "" {
		s.reply("+OK")
		return
	}
	s.reply("+OK " + msg)
}

func (s *session) fail(msg string) { s.reply("-ERR " + msg) }

// badCommand answers a bad command; after maxBadCommands in a row the
// session is closed (true).
func (s *session) badCommand(msg string) bool {
	s.bad++
	if s.bad >= maxBadCommands {
		s.fail(msg + "; too many bad commands, closing")
		_ = s.w.Flush()
		s.end = "too many bad commands"
		return true
	}
	s.fail(msg)
	return false
}

// plaintextAllowed: SPEC §6, plaintext login on TLS, from trusted loopback,
// or with auth.allow_insecure.
func (s *session) plaintextAllowed() bool {
	if s.tls || s.srv.AllowInsecure {
		return true
	}
	if !s.srv.TrustLoopback {
		return false
	}
	if ta, ok := s.remote.(*net.TCPAddr); ok {
		return ta.IP.IsLoopback()
	}
	host, _, err := net.SplitHostPort(s.remote.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

const msgPlaintext = "[AUTH] Plaintext authentication disallowed without TLS"

// dispatch runs one command. A non-nil error ends the session.
func (s *session) dispatch(line string) error {
	cmd, err := parseCommand(line)
	if err != nil {
		msg := "Invalid command"
		if errors.Is(err, errEmpty) {
			msg = "Empty command"
		}
		if s.badCommand(msg) {
			return errEndSession
		}
		return nil
	}
	bad := func(msg string) error {
		if s.badCommand(msg) {
			return errEndSession
		}
		return nil
	}
	switch cmd.verb {
	case "CAPA": // RFC 2449 §5: valid in every state
		if len(cmd.args) != 0 {
			return bad("CAPA takes no arguments")
		}
		s.capa()
		return nil
	case "QUIT":
		if len(cmd.args) != 0 {
			return bad("QUIT takes no arguments")
		}
		return s.quit()
	}
	if s.state == stateAuthorization {
		switch cmd.verb {
		case "USER":
			return s.cmdUser(cmd)
		case "PASS":
			return s.cmdPass(cmd)
		case "AUTH":
			return s.cmdAuth(cmd)
		case "STLS":
			return s.cmdSTLS(cmd)
		case "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL":
			return bad("Command not valid before login")
		case "APOP":
			return bad("APOP is not supported")
		}
		return bad("Unknown command")
	}
	switch cmd.verb {
	case "STAT":
		if len(cmd.args) != 0 {
			return bad("STAT takes no arguments")
		}
		n, size := s.totals()
		s.ok(strconv.Itoa(n) + " " + strconv.FormatInt(size, 10))
	case "LIST", "UIDL":
		return s.cmdList(cmd)
	case "RETR":
		return s.cmdRetr(cmd)
	case "TOP":
		return s.cmdTop(cmd)
	case "DELE":
		if len(cmd.args) != 1 {
			return bad("Usage: DELE msg")
		}
		i, msg := s.message(cmd.args[0])
		if i < 0 {
			return bad(msg)
		}
		s.deleted[i] = true // RFC 1939 §5: only marked; removed in UPDATE
		s.ok("Message " + cmd.args[0] + " deleted")
	case "RSET":
		if len(cmd.args) != 0 {
			return bad("RSET takes no arguments")
		}
		clear(s.deleted)
		n, size := s.totals()
		s.ok("Maildrop has " + strconv.Itoa(n) + " messages (" + strconv.FormatInt(size, 10) + " octets)")
	case "NOOP":
		if len(cmd.args) != 0 {
			return bad("NOOP takes no arguments")
		}
		s.ok("")
	case "USER", "PASS", "AUTH", "STLS", "APOP":
		return bad("Already logged in")
	default:
		return bad("Unknown command")
	}
	return nil
}

// capa lists the capabilities of SPEC §5 (RFC 2449 §5).
func (s *session) capa() {
	s.ok("Capability list follows")
	s.reply("TOP")
	s.reply("UIDL")
	s.reply("RESP-CODES")
	s.reply("AUTH-RESP-CODE")
	s.reply("PIPELINING")
	// SPEC §5: STLS whenever TLS is configured and not active. RFC 2449 §5
	// asks that AUTHORIZATION-state capabilities be announced in both
	// states (STLS itself is still refused after login, RFC 2595 §4).
	if s.srv.TLSConfig != nil && !s.tls {
		s.reply("STLS")
	}
	if s.plaintextAllowed() {
		s.reply("USER")
		s.reply("SASL PLAIN LOGIN")
	}
	s.reply("IMPLEMENTATION buzon")
	s.reply(".")
}

func (s *session) cmdUser(cmd command) error {
	if !s.plaintextAllowed() {
		s.fail(msgPlaintext)
		return nil
	}
	if len(cmd.args) != 1 {
		s.user = ""
		if s.badCommand("Usage: USER name") {
			return errEndSession
		}
		return nil
	}
	s.user = cmd.args[0]
	s.ok("Send your password")
	return nil
}

func (s *session) cmdPass(cmd command) error {
	if !s.plaintextAllowed() {
		s.fail(msgPlaintext)
		return nil
	}
	if s.user == "" {
		if s.badCommand("USER first") {
			return errEndSession
		}
		return nil
	}
	user := s.user
	s.user = ""
	// RFC 1939 §7: the password may contain spaces; take the whole rest.
	return s.authenticate(user, cmd.rest)
}

// cmdAuth implements RFC 5034 with PLAIN (RFC 4616) and LOGIN.
func (s *session) cmdAuth(cmd command) error {
	if !s.plaintextAllowed() {
		s.fail(msgPlaintext)
		return nil
	}
	s.user = ""
	if len(cmd.args) == 0 {
		// Not in RFC 5034, but widely sent by clients probing mechanisms.
		s.ok("Supported mechanisms follow")
		s.reply("PLAIN")
		s.reply("LOGIN")
		s.reply(".")
		return nil
	}
	if len(cmd.args) > 2 {
		return s.badOrEnd("Usage: AUTH mechanism [initial-response]")
	}
	mech := strings.ToUpper(cmd.args[0])
	var initial *string
	if len(cmd.args) == 2 {
		initial = &cmd.args[1]
	}
	switch mech {
	case "PLAIN":
		resp, ok, err := s.saslStep("", initial)
		if !ok || err != nil {
			return err
		}
		// authzid NUL authcid NUL passwd (RFC 4616 §2)
		parts := strings.Split(string(resp), "\x00")
		if len(parts) != 3 || parts[1] == "" {
			s.fail("[AUTH] Malformed PLAIN response")
			return nil
		}
		if parts[0] != "" && parts[0] != parts[1] {
			// Acting as another user is not offered: treat as a failure.
			return s.authFailed(parts[1])
		}
		return s.authenticate(parts[1], parts[2])
	case "LOGIN":
		name, ok, err := s.saslStep("VXNlcm5hbWU6", initial) // "Username:"
		if !ok || err != nil {
			return err
		}
		pw, ok, err := s.saslStep("UGFzc3dvcmQ6", nil) // "Password:"
		if !ok || err != nil {
			return err
		}
		return s.authenticate(string(name), string(pw))
	}
	return s.badOrEnd("Unsupported authentication mechanism")
}

func (s *session) badOrEnd(msg string) error {
	if s.badCommand(msg) {
		return errEndSession
	}
	return nil
}

// saslStep returns one decoded client response: the initial response if
// given (RFC 5034 §4, "=" meaning empty), else one read after a "+ "
// challenge. ok is false when the exchange was answered and ended here
// ("*" cancel, bad base64, overlong line).
func (s *session) saslStep(challenge string, initial *string) (resp []byte, ok bool, err error) {
	var line string
	if initial != nil {
		line = *initial
	} else {
		s.reply("+ " + challenge)
		line, err = s.readLine(maxSASLLine)
		if errors.Is(err, errLineTooLong) {
			s.fail("[AUTH] SASL response too long")
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
	if line == "*" {
		s.fail("Authentication cancelled") // RFC 5034 §4
		return nil, false, nil
	}
	if line == "=" {
		return []byte{}, true, nil
	}
	resp, derr := base64.StdEncoding.DecodeString(line)
	if derr != nil {
		s.fail("[AUTH] Invalid base64 response")
		return nil, false, nil
	}
	return resp, true, nil
}

// authenticate checks credentials, then locks and lists the maildrop.
func (s *session) authenticate(name, password string) error {
	if s.srv.Throttle != nil && s.srv.Throttle.Blocked(s.remote) {
		s.fail("[AUTH] Too many failed logins, try again later")
		s.end = "throttled"
		_ = s.w.Flush()
		return errEndSession
	}
	user, err := s.srv.Authenticate(s.ctx, name, password)
	switch {
	case errors.Is(err, users.ErrAuthFailed):
		return s.authFailed(name)
	case err != nil && s.ctx.Err() != nil:
		// Shutdown cut the wait for a password-check slot short.
		s.end = "server shutdown"
		return errEndSession
	case err != nil:
		// Not the client's fault (an unreadable user store): a temporary
		// failure, not counted as a failed login (RFC 3206 §4 SYS/TEMP).
		s.srv.logger().Error("pop3 authentication backend", "err", err)
		s.fail("[SYS/TEMP] Authentication temporarily unavailable, try again later")
		return nil
	}
	if s.srv.Throttle != nil {
		s.srv.Throttle.Success(s.remote)
	}
	drop, err := s.srv.Mail.Maildrop(user)
	if err != nil {
		s.srv.logger().Error("pop3 maildrop", "user", user, "err", err)
		s.fail("[SYS/TEMP] Maildrop not available")
		return nil
	}
	lock, err := drop.Lock()
	if errors.Is(err, maildir.ErrLocked) {
		// RFC 3206 §4: another session holds the maildrop.
		s.fail("[IN-USE] Maildrop is locked by another session")
		return nil
	}
	if err != nil {
		s.srv.logger().Error("pop3 lock", "user", user, "err", err)
		s.fail("[SYS/TEMP] Maildrop not available")
		return nil
	}
	msgs, err := drop.List()
	if err != nil {
		_ = lock.Release()
		s.srv.logger().Error("pop3 list", "user", user, "err", err)
		s.fail("[SYS/TEMP] Maildrop not available")
		return nil
	}
	s.drop, s.lock, s.msgs, s.deleted = drop, lock, msgs, make([]bool, len(msgs))
	s.login = user
	s.state = stateTransaction
	// From now on limits.idle_timeout per read and per write.
	_, idleTimeout := s.srv.timeouts()
	_ = s.conn.Conn.SetDeadline(time.Time{})
	s.conn.SetTimeout(idleTimeout)
	n, size := s.totals()
	s.ok("Logged in, " + strconv.Itoa(n) + " messages (" + strconv.FormatInt(size, 10) + " octets)")
	return nil
}

// authFailed: SPEC §5, the same reply whether the user exists or not,
// after the throttle's delay; the log line has a fixed format.
func (s *session) authFailed(name string) error {
	ip := s.remote.String()
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	s.srv.logger().Warn("pop3 authentication failed", "client", ip, "user", sanitize(name))
	closeNow := false
	if s.srv.Throttle != nil {
		// Flush first so the client's own timers are not what is measured.
		_ = s.w.Flush()
		closeNow = s.srv.Throttle.Failure(s.ctx, s.remote)
	}
	s.fail("[AUTH] Authentication failed")
	if closeNow || s.ctx.Err() != nil {
		_ = s.w.Flush()
		s.end = "too many failed logins"
		return errEndSession
	}
	return nil
}

// sanitize keeps log lines one line and bounded.
func sanitize(v string) string {
	if len(v) > 64 {
		v = v[:64]
	}
	q := strconv.QuoteToASCII(v)
	return q[1 : len(q)-1]
}

// cmdSTLS implements RFC 2595 §4.
func (s *session) cmdSTLS(cmd command) error {
	if len(cmd.args) != 0 {
		return s.badOrEnd("STLS takes no arguments")
	}
	if s.srv.TLSConfig == nil {
		return s.badOrEnd("TLS is not available")
	}
	if s.tls {
		return s.badOrEnd("TLS already active")
	}
	s.reply("+OK Begin TLS negotiation")
	if err := s.w.Flush(); err != nil {
		return err
	}
	if s.r.Buffered() > 0 {
		// Bytes sent after STLS before the handshake would be executed as
		// if they came over TLS (CVE-2011-0411): refuse the connection.
		s.end = "data after STLS"
		return errEndSession
	}
	tc := tls.Server(s.conn.Conn, s.srv.TLSConfig)
	if err := tc.HandshakeContext(s.ctx); err != nil {
		s.end = "tls handshake failed"
		return errEndSession
	}
	s.conn.Conn = tc
	s.tls = true
	// RFC 2595 §4: forget what was learnt before TLS; fresh buffers.
	s.user = ""
	s.bad = 0
	s.r.Reset(s.conn)
	s.w.Reset(s.conn)
	return nil
}

func (s *session) totals() (n int, size int64) {
	for i, m := range s.msgs {
		if !s.deleted[i] {
			n++
			size += m.Size
		}
	}
	return n, size
}

// message resolves a message-number argument; i < 0 with an error text
// when it is malformed, out of range or marked as deleted.
func (s *session) message(arg string) (int, string) {
	n, ok := parseMsgNum(arg)
	if !ok {
		return -1, "Invalid message number"
	}
	if n < 1 || n > len(s.msgs) {
		return -1, "No such message"
	}
	if s.deleted[n-1] {
		return -1, "Message " + arg + " already deleted"
	}
	return n - 1, ""
}

func (s *session) cmdList(cmd command) error {
	uidl := cmd.verb == "UIDL"
	item := func(buf []byte, i int) []byte {
		buf = strconv.AppendInt(buf, int64(i+1), 10)
		buf = append(buf, ' ')
		if uidl {
			buf = append(buf, UIDL(s.msgs[i].ID)...)
		} else {
			buf = strconv.AppendInt(buf, s.msgs[i].Size, 10)
		}
		return buf
	}
	switch len(cmd.args) {
	case 0:
		n, size := s.totals()
		if uidl {
			s.ok("Unique-ID listing follows")
		} else {
			s.ok(strconv.Itoa(n) + " messages (" + strconv.FormatInt(size, 10) + " octets)")
		}
		buf := make([]byte, 0, 128)
		for i := range s.msgs {
			if s.deleted[i] {
				continue
			}
			buf = append(item(buf[:0], i), '\r', '\n')
			s.w.Write(buf)
		}
		s.reply(".")
	case 1:
		i, msg := s.message(cmd.args[0])
		if i < 0 {
			return s.badOrEnd(msg)
		}
		s.ok(string(item(nil, i)))
	default:
		return s.badOrEnd("Usage: " + cmd.verb + " [msg]")
	}
	return nil
}

func (s *session) cmdRetr(cmd command) error {
	if len(cmd.args) != 1 {
		return s.badOrEnd("Usage: RETR msg")
	}
	i, msg := s.message(cmd.args[0])
	if i < 0 {
		return s.badOrEnd(msg)
	}
	n, err := s.send(i, -1, "")
	if err != nil {
		return err
	}
	s.retrieved++
	s.bytes += n
	if s.srv.Counters != nil {
		s.srv.Counters.AddRetrieved(1)
	}
	return nil
}

func (s *session) cmdTop(cmd command) error {
	if len(cmd.args) != 2 {
		return s.badOrEnd("Usage: TOP msg lines")
	}
	i, msg := s.message(cmd.args[0])
	if i < 0 {
		return s.badOrEnd(msg)
	}
	lines, ok := parseMsgNum(cmd.args[1])
	if !ok {
		return s.badOrEnd("Invalid number of lines")
	}
	n, err := s.send(i, lines, "Top of message follows")
	s.bytes += n
	return err
}

// send streams message i (all of it when lines < 0, else TOP's part),
// after "+OK okText", or "+OK <size> octets" when okText is empty.
// Once "+OK" is out, any failure ends the session: the client could not
// tell a truncated message from a whole one.
func (s *session) send(i, lines int, okText string) (int64, error) {
	rc, err := s.drop.Open(s.msgs[i].ID)
	if err != nil {
		if !errors.Is(err, maildir.ErrNotFound) {
			s.srv.logger().Error("pop3 open", "user", s.login, "id", s.msgs[i].ID, "err", err)
		}
		s.fail("[SYS/TEMP] Message not available")
		return 0, nil
	}
	defer rc.Close()
	if okText == "" {
		// Built in place: RETR is the hot path, no allocation per message.
		s.bad = 0
		s.w.WriteString("+OK ")
		s.w.Write(strconv.AppendInt(s.num[:0], s.msgs[i].Size, 10))
		s.w.WriteString(" octets\r\n")
	} else {
		s.ok(okText)
	}
	s.dw = dotWriter{w: &s.w, out: &s.w, lineStart: true}
	dw := &s.dw
	var dst io.Writer = dw
	if lines >= 0 {
		dst = &topWriter{w: dw, lines: lines}
	}
	// The file is read in large pieces into a pooled buffer (io.Copy
	// would allocate 32 KiB per message); the output buffer sends the
	// result in large writes.
	buf := s.srv.bufs.get()
	defer s.srv.bufs.put(buf)
	for {
		n, rerr := rc.Read(buf[:])
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				if errors.Is(err, errTopDone) {
					break
				}
				return dw.n, err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			// A read error, not the client: log it.
			s.srv.logger().Error("pop3 read", "user", s.login, "id", s.msgs[i].ID, "err", rerr)
			s.end = "message read error"
			return dw.n, rerr
		}
	}
	if err := dw.Close(); err != nil {
		return dw.n, err
	}
	return dw.n, nil
}

// quit ends the session; from TRANSACTION it enters UPDATE and removes the
// marked messages (RFC 1939 §6).
func (s *session) quit() error {
	if s.state != stateTransaction {
		s.ok("Bye")
		_ = s.w.Flush()
		s.end = "quit"
		return errEndSession
	}
	s.state = stateUpdate
	failed := 0
	for i, m := range s.msgs {
		if !s.deleted[i] {
			continue
		}
		err := s.drop.Remove(m.ID)
		if err != nil && !errors.Is(err, maildir.ErrNotFound) {
			s.srv.logger().Error("pop3 remove", "user", s.login, "id", m.ID, "err", err)
			failed++
			continue
		}
		s.removed++
	}
	// The +OK below promises the deletions happened: make the unlinks
	// durable first, so a crash cannot bring deleted messages back.
	if s.removed > 0 {
		if err := s.drop.Sync(); err != nil {
			s.srv.logger().Error("pop3 remove sync", "user", s.login, "err", err)
			failed++
		}
	}
	if s.srv.Counters != nil && s.removed > 0 {
		s.srv.Counters.AddDeleted(int64(s.removed))
	}
	// Release before replying: a client reconnecting at once must not
	// find its own maildrop still locked.
	if s.lock != nil {
		_ = s.lock.Release()
		s.lock = nil
	}
	s.end = "quit"
	if failed > 0 {
		s.fail("[SYS/TEMP] Some deleted messages not removed")
	} else {
		s.ok("Bye, " + strconv.Itoa(s.removed) + " messages deleted")
	}
	_ = s.w.Flush()
	return errEndSession
}
