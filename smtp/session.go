package smtp

import (
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/buzon-mail/buzon/users"
)

// smtpErr builds the *gosmtp.SMTPError every failure handed to go-smtp must
// be: no internal path or system error text ever reaches a client.
func smtpErr(code int, e1, e2, e3 int, msg string) *gosmtp.SMTPError {
	return &gosmtp.SMTPError{Code: code, EnhancedCode: gosmtp.EnhancedCode{e1, e2, e3}, Message: msg}
}

var (
	errTempFailure   = smtpErr(451, 4, 3, 0, "Temporary local problem, try again later")
	errDiskFull      = smtpErr(452, 4, 3, 1, "Insufficient system storage, try again later")
	errAuthRequired  = smtpErr(530, 5, 7, 0, "Authentication required")
	errEncryptionReq = smtpErr(538, 5, 7, 11, "Encryption required for requested authentication mechanism")
	errAuthInTx      = smtpErr(503, 5, 5, 1, "AUTH not permitted during a mail transaction")
	errAuthFailed    = smtpErr(535, 5, 7, 8, "Authentication credentials invalid")
	errAuthTemp      = smtpErr(454, 4, 7, 0, "Temporary authentication failure, try again later")
	errTooManyFails  = smtpErr(421, 4, 7, 0, "Too many authentication failures, closing connection")
	errBadSASL       = smtpErr(501, 5, 5, 2, "Invalid authentication exchange")
	errRelayDenied   = smtpErr(550, 5, 7, 1, "Relaying denied")
	errNoSuchUser    = smtpErr(550, 5, 1, 1, "No such user here")
	errBadSender     = smtpErr(553, 5, 1, 7, "Bad sender address syntax")
	errBadRcpt       = smtpErr(553, 5, 1, 3, "Bad recipient address syntax")
	// RFC 5321 §4.5.3.1.10: "501 Path too long".
	errSenderTooLong = smtpErr(501, 5, 1, 7, "Path too long")
	errRcptTooLong   = smtpErr(501, 5, 1, 3, "Path too long")
	errNeedUTF8      = smtpErr(553, 5, 6, 7, "Non-ASCII address requires SMTPUTF8")
	errSenderLocal   = smtpErr(550, 5, 7, 1, "Sender address in a local domain requires authentication")
	errNotOwner      = smtpErr(553, 5, 7, 1, "Sender address not owned by the authenticated user")
	errTooLarge      = smtpErr(552, 5, 3, 4, "Message size exceeds fixed maximum message size")
	errLineTooLong   = smtpErr(500, 5, 5, 2, "Line too long")
	errRejected      = smtpErr(550, 5, 7, 1, "Message rejected by content filter")
	errAborted       = smtpErr(451, 4, 3, 0, "Message transfer aborted")
)

// session is one SMTP session (one per TLS layer: go-smtp starts a new one
// after STARTTLS).
type session struct {
	s      *Server
	mode   Mode
	c      *gosmtp.Conn
	base   *conn
	remote net.Addr
	ip     net.IP
	tls    bool
	// trusted: a loopback client with auth.trust_loopback (tests turn it
	// off to act as a remote client).
	trusted bool

	authUser string

	// mu guards tx: with BDAT, go-smtp runs Data on its own goroutine and
	// may call Reset (RSET, connection end) while it runs.
	mu sync.Mutex
	tx envelope
}

// envelope is the current transaction.
type envelope struct {
	set  bool // MAIL accepted
	from string
	utf8 bool
	// helo and auth are copied at MAIL: with BDAT the message is written
	// on go-smtp's own goroutine while the session's goroutine may already
	// take the next EHLO or AUTH.
	helo  string
	auth  string
	rcpts []string // addresses as given, accepted
	users []string // distinct local users they resolve to
}

func (s *Server) newSession(c *gosmtp.Conn, mode Mode) (gosmtp.Session, error) {
	nc := c.Conn()
	_, isTLS := c.TLSConnectionState()
	ip := hostIP(nc.RemoteAddr())
	return &session{
		s:       s,
		mode:    mode,
		c:       c,
		base:    baseConn(nc),
		remote:  nc.RemoteAddr(),
		ip:      ip,
		tls:     isTLS,
		trusted: ip != nil && ip.IsLoopback() && s.opts.TrustLoopback,
	}, nil
}

// plainAllowed: plaintext mechanisms only over TLS, from a trusted loopback
// client, or with auth.allow_insecure (SPEC §4, §6; RFC 4954 §4).
func (ss *session) plainAllowed() bool {
	o := &ss.s.opts
	return ss.tls || o.AllowInsecure || ss.trusted
}

func (ss *session) Reset() {
	ss.mu.Lock()
	ss.tx = envelope{}
	ss.mu.Unlock()
}

func (ss *session) Logout() error { return nil }

// AuthMechanisms is empty where plaintext auth is not allowed, so go-smtp
// leaves AUTH out of the EHLO reply there.
func (ss *session) AuthMechanisms() []string {
	if ss.plainAllowed() {
		return []string{sasl.Plain, sasl.Login}
	}
	return nil
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	// RFC 4954 §4: AUTH is not permitted during a mail transaction.
	ss.mu.Lock()
	inTx := ss.tx.set
	ss.mu.Unlock()
	if inTx {
		return nil, errAuthInTx
	}
	if !ss.plainAllowed() {
		return nil, errEncryptionReq
	}
	if t := ss.s.opts.Throttle; t != nil && t.Blocked(ss.remote) {
		ss.closeAfterReply()
		return nil, errTooManyFails
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return saslGuard{sasl.NewPlainServer(func(identity, username, password string) error {
			// RFC 4616 §2: an authorization identity other than the
			// user's own is not supported.
			if identity != "" && identity != username {
				return ss.authFailed(mech)
			}
			return ss.authenticate(mech, username, password)
		})}, nil
	case sasl.Login:
		return saslGuard{&loginServer{auth: func(u, p string) error { return ss.authenticate(mech, u, p) }}}, nil
	}
	return nil, gosmtp.ErrAuthUnknownMechanism
}

func (ss *session) authenticate(mech, username, password string) error {
	ctx := ss.s.ctx
	u, err := ss.s.opts.Users.Authenticate(ctx, username, password)
	if err != nil {
		if !errors.Is(err, users.ErrAuthFailed) && !errors.Is(err, users.ErrInvalidUsername) && !errors.Is(err, users.ErrNotFound) {
			// The store could not answer (unreadable file, shutdown): not
			// the client's fault, so no throttle count; RFC 4954 §6 454.
			ss.s.log.Error("smtp auth backend error", "ip", ss.ipString(), "err", err)
			return errAuthTemp
		}
		return ss.authFailed(mech)
	}
	if t := ss.s.opts.Throttle; t != nil {
		t.Success(ss.remote)
	}
	ss.authUser = u.Name
	ss.s.log.Info("smtp auth ok", "ip", ss.ipString(), "user", u.Name, "mech", strings.ToUpper(mech))
	return nil
}

// authFailed logs the one fixed, fail2ban-friendly line, waits the
// throttle's delay and answers 535, or 421 and closes past the threshold.
func (ss *session) authFailed(mech string) error {
	ss.s.log.Warn("smtp auth failed", "ip", ss.ipString(), "mech", strings.ToUpper(mech))
	if t := ss.s.opts.Throttle; t != nil {
		if t.Failure(ss.s.ctx, ss.remote) {
			ss.closeAfterReply()
			return errTooManyFails
		}
	}
	return errAuthFailed
}

// closeAfterReply ends the session once the pending reply is written:
// the next read sees end of file and go-smtp closes the connection.
func (ss *session) closeAfterReply() {
	if ss.base != nil {
		ss.base.eof.Store(true)
	}
}

func (ss *session) ipString() string {
	if ss.ip == nil {
		return "unknown"
	}
	return ss.ip.String()
}

func (ss *session) isLocalDomain(domain string) bool {
	return ss.s.dyn.Load().domains[strings.ToLower(strings.TrimSuffix(domain, "."))]
}

// Mail applies SPEC §4's sender rules.
func (ss *session) Mail(from string, opts *gosmtp.MailOptions) error {
	ss.Reset()
	if ss.mode != MX && ss.authUser == "" {
		return errAuthRequired // RFC 6409 §4.3 / RFC 4954 §6
	}
	if pathTooLong(from) {
		return errSenderTooLong
	}
	if !validAddressText(from) {
		return errBadSender
	}
	utf8 := opts != nil && opts.UTF8
	if !utf8 && !isASCII(from) {
		return errNeedUTF8 // RFC 6531 §3.5
	}
	if min := ss.s.opts.MinFreeBytes; min > 0 {
		free, err := ss.s.opts.Store.FreeBytes()
		if err != nil {
			ss.s.log.Error("smtp free space check", "err", err)
			return errTempFailure
		}
		if free < uint64(min) {
			ss.s.log.Warn("smtp low disk space, refusing mail", "free_bytes", free, "min_free_bytes", min)
			return errDiskFull
		}
	}
	if ss.authUser != "" {
		if !ss.ownsAddress(from) {
			ss.s.log.Info("smtp sender refused", "ip", ss.ipString(), "user", ss.authUser, "from", from)
			return errNotOwner
		}
	} else if !ss.trusted {
		// A remote, unauthenticated client claiming one of our own
		// domains is forging (SPEC §4).
		if _, dom, ok := splitAddress(from); ok && ss.isLocalDomain(dom) {
			ss.s.log.Info("smtp sender refused", "ip", ss.ipString(), "from", from)
			return errSenderLocal
		}
	}
	ss.mu.Lock()
	ss.tx = envelope{set: true, from: from, utf8: utf8, helo: ss.c.Hostname(), auth: ss.authUser}
	ss.mu.Unlock()
	return nil
}

// ownsAddress: the address is the authenticated user's own, at a local
// domain, directly or through an alias.
func (ss *session) ownsAddress(addr string) bool {
	local, dom, ok := splitAddress(addr)
	if !ok || !ss.isLocalDomain(dom) {
		return false
	}
	base := baseLocal(local)
	if base == ss.authUser {
		return true
	}
	return slices.Contains(ss.s.dyn.Load().aliases[base], ss.authUser)
}

// Rcpt applies SPEC §4's recipient rules: never an open relay.
func (ss *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	err := ss.rcpt(to)
	if err != nil {
		code := 0
		var se *gosmtp.SMTPError
		if errors.As(err, &se) {
			code = se.Code
		}
		ss.s.log.Info("smtp recipient rejected", "ip", ss.ipString(), "from", ss.snapshot().from, "rcpt", logAddr(to), "code", code)
	}
	return err
}

func (ss *session) rcpt(to string) error {
	if pathTooLong(to) {
		return errRcptTooLong
	}
	if !validAddressText(to) {
		return errBadRcpt
	}
	if !ss.snapshot().utf8 && !isASCII(to) {
		return errNeedUTF8
	}
	local, dom, ok := splitAddress(to)
	if !ok {
		return errBadRcpt
	}
	if !ss.isLocalDomain(dom) {
		return errRelayDenied
	}
	targets, err := ss.resolve(local)
	if err != nil {
		return err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.tx.rcpts = append(ss.tx.rcpts, to)
	for _, u := range targets {
		if !slices.Contains(ss.tx.users, u) {
			ss.tx.users = append(ss.tx.users, u)
		}
	}
	return nil
}

// resolve maps a local part to existing users: "+tag" dropped, aliases
// first, case-insensitive.
func (ss *session) resolve(local string) ([]string, error) {
	base := baseLocal(local)
	names := []string{base}
	if al, ok := ss.s.dyn.Load().aliases[base]; ok {
		names = al
	}
	var out []string
	for _, n := range names {
		u, err := ss.s.opts.Users.Lookup(n)
		switch {
		case err == nil:
			out = append(out, u.Name)
		case errors.Is(err, users.ErrNotFound), errors.Is(err, users.ErrInvalidUsername), errors.Is(err, users.ErrReserved):
		default:
			ss.s.log.Error("smtp user lookup", "user", n, "err", err)
			return nil, errTempFailure
		}
	}
	if len(out) == 0 {
		return nil, errNoSuchUser
	}
	return out, nil
}

// snapshot copies the current transaction.
func (ss *session) snapshot() envelope {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	tx := ss.tx
	tx.rcpts = slices.Clone(tx.rcpts)
	tx.users = slices.Clone(tx.users)
	return tx
}

// Data delivers the message; see deliver.go.
func (ss *session) Data(r io.Reader) error {
	return ss.s.deliver(ss, ss.snapshot(), r)
}

// saslGuard makes sure every error a SASL mechanism returns is an
// *SMTPError (go-sasl's own errors would otherwise reach the client).
type saslGuard struct{ sasl.Server }

func (g saslGuard) Next(resp []byte) ([]byte, bool, error) {
	ch, done, err := g.Server.Next(resp)
	if err != nil {
		var se *gosmtp.SMTPError
		if !errors.As(err, &se) {
			return nil, false, errBadSASL
		}
		return nil, false, se
	}
	return ch, done, nil
}

// loginServer is the server side of the LOGIN mechanism
// (draft-murchison-sasl-login): two challenges, "Username:" and
// "Password:"; an initial response is the user name.
type loginServer struct {
	auth     func(user, pass string) error
	user     string
	step     int
	finished bool
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	if l.finished {
		return nil, false, sasl.ErrUnexpectedClientResponse
	}
	switch l.step {
	case 0:
		l.step = 1
		if resp == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.user = string(resp)
		l.step = 2
		return []byte("Password:"), false, nil
	default:
		l.finished = true
		if err := l.auth(l.user, string(resp)); err != nil {
			return nil, false, err
		}
		return nil, true, nil
	}
}
