// Package accounting counts and limits the client connections of every
// listener: historic, live and rejected connections per protocol, raw socket
// bytes, and message counters, as SPEC §7 defines them. It enforces
// limits.max_connections, limits.max_connections_per_ip and the MGMT pause by
// handing a refused connection to a protocol-specific refusal.
//
// What is counted:
//   - Historic: every TCP connection accepted on an SMTP or POP3 listener,
//     admitted or refused.
//   - Live: admitted SMTP and POP3 connections not yet closed. A refused
//     connection is never live: it is closed as soon as its refusal is
//     written.
//   - Rejected: connections refused because of a limit or the pause.
//   - Bytes: raw socket bytes read and written on SMTP and POP3 connections
//     (TLS records included), refused connections included.
//   - MGMT connections count only in MGMTLive.
//
// The per-address limit keys a connection by its IP address (IPv4-mapped
// IPv6 addresses count as IPv4; each IPv6 address is its own key).
//
// An admitted connection costs one small wrapper struct and no goroutine.
// Historic counters, bytes and message counters are saved to
// data_dir/counters.json by Save and Run; live counts are never saved.
package accounting

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/buzon-mail/buzon/internal/pause"
)

// Proto names the protocol a listener serves.
type Proto int

const (
	SMTP Proto = iota
	POP3
	// MGMT connections count only in Stats.MGMTLive; they are not subject to
	// the mail limits or the pause, and their bytes are not counted.
	MGMT
)

func (p Proto) String() string {
	switch p {
	case SMTP:
		return "smtp"
	case POP3:
		return "pop3"
	case MGMT:
		return "mgmt"
	}
	return "unknown"
}

// Reason says why a connection was refused.
type Reason int

const (
	// LimitReached: limits.max_connections or limits.max_connections_per_ip.
	LimitReached Reason = iota + 1
	// Paused: the MGMT pause (TIMEOUT) is active.
	Paused
)

func (r Reason) String() string {
	switch r {
	case LimitReached:
		return "limit reached"
	case Paused:
		return "paused"
	}
	return "unknown"
}

// Refuser writes the protocol's refusal to a refused connection, e.g.
// SMTP "421 4.7.0 ..." (LimitReached) / "421 4.3.2 ..." (Paused), POP3
// "-ERR [SYS/TEMP] ...". The accountant closes the connection afterwards.
type Refuser func(w io.Writer, why Reason)

// ListenerOptions configure one accounted listener.
type ListenerOptions struct {
	Proto  Proto
	Refuse Refuser
	// TLS, when set, marks an implicit-TLS listener: a refused connection is
	// refused after the handshake. Admitted connections are returned raw; the
	// caller wraps the accounting listener with tls.NewListener itself, so the
	// protocol server still sees a *tls.Conn.
	TLS *tls.Config
	// MaxLive bounds live connections of this listener's protocol (used for
	// MGMT's 16 sessions); 0 means no extra bound.
	MaxLive int
}

// Timings of a refusal. A refused client gets this long to complete the TLS
// handshake and to take the refusal line; then the connection is closed
// whatever happens.
const (
	refuseHandshakeTimeout = 10 * time.Second
	refuseWriteTimeout     = 5 * time.Second
	// refuseLinger and refuseDrainMax bound how long and how much input of a
	// refused client is read and discarded before the socket is closed.
	refuseLinger   = 2 * time.Second
	refuseDrainMax = 64 << 10
	// maxRefusing bounds the refusals in progress per listener. A flood of
	// connections beyond it is closed without a refusal line rather than
	// holding a goroutine and a socket each for up to the timeouts above.
	maxRefusing = 256
)

// Options configure an Accountant.
type Options struct {
	// StatePath is the file the persistent counters are loaded from and saved
	// to (data_dir/counters.json). Empty: nothing persisted.
	StatePath string
	// MaxConnections and MaxPerIP are read at every accept, so changes made
	// at run time (MGMT MAX_CONNEC, SIGHUP) apply to the next connection.
	// Nil, or a value <= 0, means no limit.
	MaxConnections func() int
	MaxPerIP       func() int
	Pause          *pause.Gate // nil: never paused
	Logger         *slog.Logger
	// SaveInterval is how often Run saves the counters (default 10s).
	SaveInterval time.Duration
}

// Stats is a snapshot of every figure MGMT reports.
type Stats struct {
	Historic, Live, Rejected int64 // SMTP+POP3
	BytesSent, BytesReceived int64 // SMTP+POP3 raw socket bytes
	SMTPHistoric, SMTPLive   int64
	POP3Historic, POP3Live   int64
	MGMTLive                 int64
	MessagesAccepted         int64 // SMTP transactions answered 250
	MessagesDelivered        int64 // recipient copies
	MessagesRetrieved        int64 // POP3 RETR completed
	MessagesDeleted          int64 // POP3 deletions applied at QUIT
	Started                  time.Time
}

// Accountant is safe for concurrent use.
type Accountant struct {
	opts    Options
	log     *slog.Logger
	started time.Time

	historic [2]atomic.Int64 // SMTP, POP3
	live     [3]atomic.Int64 // SMTP, POP3, MGMT
	rejected atomic.Int64
	sent     atomic.Int64
	received atomic.Int64

	accepted, delivered, retrieved, deleted atomic.Int64

	// mu guards the admission decision: the live mail total and the live
	// count per address change together with the check.
	mu        sync.Mutex
	liveTotal int
	perIP     map[netip.Addr]int

	saveMu sync.Mutex // one Save at a time
}

// New loads the persisted counters (if any) and returns an Accountant.
func New(opts Options) (*Accountant, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SaveInterval <= 0 {
		opts.SaveInterval = 10 * time.Second
	}
	a := &Accountant{
		opts:    opts,
		log:     opts.Logger,
		started: time.Now(),
		perIP:   make(map[netip.Addr]int),
	}
	if opts.StatePath != "" {
		c, err := loadCounters(opts.StatePath)
		if err != nil {
			return nil, err
		}
		a.historic[SMTP].Store(c.SMTPHistoric)
		a.historic[POP3].Store(c.POP3Historic)
		a.rejected.Store(c.Rejected)
		a.sent.Store(c.BytesSent)
		a.received.Store(c.BytesReceived)
		a.accepted.Store(c.MessagesAccepted)
		a.delivered.Store(c.MessagesDelivered)
		a.retrieved.Store(c.MessagesRetrieved)
		a.deleted.Store(c.MessagesDeleted)
	}
	return a, nil
}

// Snapshot returns the current figures. Each figure is read atomically; the
// set is not one atomic picture (a connection accepted meanwhile may show in
// Historic but not yet in Live).
func (a *Accountant) Snapshot() Stats {
	s := Stats{
		SMTPHistoric:      a.historic[SMTP].Load(),
		POP3Historic:      a.historic[POP3].Load(),
		SMTPLive:          a.live[SMTP].Load(),
		POP3Live:          a.live[POP3].Load(),
		MGMTLive:          a.live[MGMT].Load(),
		Rejected:          a.rejected.Load(),
		BytesSent:         a.sent.Load(),
		BytesReceived:     a.received.Load(),
		MessagesAccepted:  a.accepted.Load(),
		MessagesDelivered: a.delivered.Load(),
		MessagesRetrieved: a.retrieved.Load(),
		MessagesDeleted:   a.deleted.Load(),
		Started:           a.started,
	}
	s.Historic = s.SMTPHistoric + s.POP3Historic
	s.Live = s.SMTPLive + s.POP3Live
	return s
}

// Message counters, called by the protocol servers.
func (a *Accountant) AddAccepted(n int64)  { a.accepted.Add(n) }
func (a *Accountant) AddDelivered(n int64) { a.delivered.Add(n) }
func (a *Accountant) AddRetrieved(n int64) { a.retrieved.Add(n) }
func (a *Accountant) AddDeleted(n int64)   { a.deleted.Add(n) }

// Run saves the counters every SaveInterval (10 s) until ctx ends, then saves
// once more and returns the error of that last save. Errors of the periodic
// saves are logged.
func (a *Accountant) Run(ctx context.Context) error {
	t := time.NewTicker(a.opts.SaveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return a.Save()
		case <-t.C:
			if err := a.Save(); err != nil {
				a.log.Error("saving counters", "err", err)
			}
		}
	}
}

// Save writes the persistent counters atomically now.
func (a *Accountant) Save() error {
	if a.opts.StatePath == "" {
		return nil
	}
	a.saveMu.Lock()
	defer a.saveMu.Unlock()
	return saveCounters(a.opts.StatePath, countersOf(a.Snapshot()))
}

// admit decides on a new mail connection from ip and, when it is admitted,
// counts it live. It returns 0 when admitted.
func (a *Accountant) admit(proto Proto, ip netip.Addr, maxLive int) Reason {
	if p := a.opts.Pause; p != nil && p.Active() {
		return Paused
	}
	maxConns, maxPerIP := 0, 0
	if a.opts.MaxConnections != nil {
		maxConns = a.opts.MaxConnections()
	}
	if a.opts.MaxPerIP != nil {
		maxPerIP = a.opts.MaxPerIP()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case maxConns > 0 && a.liveTotal >= maxConns,
		maxPerIP > 0 && a.perIP[ip] >= maxPerIP,
		maxLive > 0 && a.live[proto].Load() >= int64(maxLive):
		return LimitReached
	}
	a.liveTotal++
	a.perIP[ip]++
	a.live[proto].Add(1)
	return 0
}

// release undoes admit when an admitted mail connection closes.
func (a *Accountant) release(proto Proto, ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.liveTotal--
	if n := a.perIP[ip] - 1; n > 0 {
		a.perIP[ip] = n
	} else {
		delete(a.perIP, ip)
	}
	a.live[proto].Add(-1)
}

// admitMGMT bounds MGMT sessions by maxLive only.
func (a *Accountant) admitMGMT(maxLive int) Reason {
	for {
		n := a.live[MGMT].Load()
		if maxLive > 0 && n >= int64(maxLive) {
			return LimitReached
		}
		if a.live[MGMT].CompareAndSwap(n, n+1) {
			return 0
		}
	}
}

// ipOf returns the IP address of a remote address; an address without one
// (not expected from TCP) gives the zero Addr, which all such clients share.
func ipOf(addr net.Addr) netip.Addr {
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case nil:
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			ip = ap.Addr()
		}
	}
	return ip.Unmap().WithZone("")
}

// Listener wraps a raw TCP listener. Accept returns only admitted
// connections; each counts its bytes and leaves the live count exactly once
// when closed. Refusals happen on their own goroutines so Accept is never
// blocked by a slow refused client.
//
// Temporary accept errors (out of file descriptors, a connection aborted
// before it was accepted) are logged and retried with a growing pause, so
// they never end a server's accept loop; other errors (the listener was
// closed) are returned. Closing the returned listener closes l, cuts the
// refusals in progress and waits for their goroutines.
func (a *Accountant) Listener(l net.Listener, opts ListenerOptions) net.Listener {
	return &listener{
		Listener: l,
		a:        a,
		opts:     opts,
		done:     make(chan struct{}),
		refusing: make(map[net.Conn]struct{}),
	}
}

type listener struct {
	net.Listener
	a    *Accountant
	opts ListenerOptions

	closeOnce sync.Once
	closeErr  error
	done      chan struct{} // closed by Close

	mu       sync.Mutex
	refusing map[net.Conn]struct{} // refusals in progress; nil once closed
	wg       sync.WaitGroup
}

func (l *listener) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !temporary(err) {
				return nil, err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.a.log.Warn("accept failed, retrying", "proto", l.opts.Proto.String(), "addr", l.Addr().String(), "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
				continue
			case <-l.done:
				t.Stop()
				return nil, net.ErrClosed
			}
		}
		backoff = 0
		if ac := l.accept(c); ac != nil {
			return ac, nil
		}
	}
}

// temporary reports accept errors that say nothing about the listener
// itself: the next Accept may well succeed.
func temporary(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EPROTO) ||
		errors.Is(err, syscall.EPERM) // a firewall dropping the connection
}

// accept accounts c: it returns the wrapped conn when admitted, or nil after
// handing c to a refusal.
func (l *listener) accept(c net.Conn) net.Conn {
	a := l.a
	if l.opts.Proto == MGMT {
		if why := a.admitMGMT(l.opts.MaxLive); why != 0 {
			l.refuse(c, why, false)
			return nil
		}
		return &conn{Conn: c, a: a, proto: MGMT}
	}
	proto := l.opts.Proto
	if proto != SMTP && proto != POP3 {
		proto = SMTP // an unknown protocol is accounted as mail, never unlimited
	}
	a.historic[proto].Add(1)
	ip := ipOf(c.RemoteAddr())
	if why := a.admit(proto, ip, l.opts.MaxLive); why != 0 {
		a.rejected.Add(1)
		l.refuse(c, why, true)
		return nil
	}
	return &conn{Conn: c, a: a, proto: proto, ip: ip, bytes: true}
}

// refuse writes the refusal on its own goroutine and closes c. counted: the
// refused connection's bytes count (mail listeners).
func (l *listener) refuse(c net.Conn, why Reason, counted bool) {
	if l.a.log.Enabled(context.Background(), slog.LevelDebug) {
		l.a.log.Debug("connection refused", "proto", l.opts.Proto.String(), "remote", c.RemoteAddr().String(), "reason", why.String())
	}
	l.mu.Lock()
	if l.refusing == nil || len(l.refusing) >= maxRefusing || l.opts.Refuse == nil {
		l.mu.Unlock()
		c.Close()
		return
	}
	l.refusing[c] = struct{}{}
	l.wg.Add(1)
	l.mu.Unlock()

	go func() {
		defer l.wg.Done()
		defer func() {
			l.mu.Lock()
			if l.refusing != nil {
				delete(l.refusing, c)
			}
			l.mu.Unlock()
		}()
		var raw net.Conn = c
		if counted {
			raw = &conn{Conn: c, a: l.a, bytes: true, refused: true}
		}
		defer raw.Close()
		var w net.Conn = raw
		if l.opts.TLS != nil {
			// SPEC §4, §5: on implicit-TLS listeners the refusal is sent
			// inside TLS, after the handshake.
			tc := tls.Server(raw, l.opts.TLS)
			_ = tc.SetDeadline(time.Now().Add(refuseHandshakeTimeout))
			if err := tc.Handshake(); err != nil {
				return
			}
			w = tc
			defer tc.Close() // sends close_notify before the socket closes
		}
		_ = w.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
		l.opts.Refuse(w, why)
		lingerClose(c, raw, w)
	}()
}

// lingerClose ends a refusal gracefully: it half-closes the sending side (a
// TLS close_notify first on TLS), then reads and discards what the client
// still sends for a short while. Closing a socket with unread input makes
// the kernel answer with a reset, and a reset can destroy the refusal line
// before the client has read it (a client that pipelined a command right
// after connecting, for instance).
func lingerClose(c, raw, w net.Conn) {
	if tc, ok := w.(*tls.Conn); ok {
		if tc.CloseWrite() != nil {
			return
		}
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() != nil {
			return
		}
	}
	_ = raw.SetReadDeadline(time.Now().Add(refuseLinger))
	_, _ = io.Copy(io.Discard, io.LimitReader(raw, refuseDrainMax))
}

// Close closes the wrapped listener, closes the connections still being
// refused and waits until their goroutines have ended.
func (l *listener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		l.closeErr = l.Listener.Close()
		l.mu.Lock()
		for c := range l.refusing {
			c.Close()
		}
		l.refusing = nil
		l.mu.Unlock()
		l.wg.Wait()
	})
	return l.closeErr
}

// conn is an accounted connection. It is what every admitted connection
// costs: no goroutine, a few words of memory, two atomic adds per I/O call.
type conn struct {
	net.Conn
	a       *Accountant
	proto   Proto
	ip      netip.Addr
	bytes   bool // count raw bytes (SMTP, POP3)
	refused bool // a refused connection: never live, nothing to release
	closed  atomic.Bool
}

func (c *conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.bytes {
		c.a.received.Add(int64(n))
	}
	return n, err
}

func (c *conn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 && c.bytes {
		c.a.sent.Add(int64(n))
	}
	return n, err
}

// Close closes the connection; the first Close leaves the live count.
func (c *conn) Close() error {
	err := c.Conn.Close()
	if !c.closed.Swap(true) && !c.refused {
		if c.proto == MGMT {
			c.a.live[MGMT].Add(-1)
		} else {
			c.a.release(c.proto, c.ip)
		}
	}
	return err
}

// Unwrap returns the raw connection.
func (c *conn) Unwrap() net.Conn { return c.Conn }
