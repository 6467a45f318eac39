package smtp

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/buzon-mail/buzon/maildir"
)

// newQueueID returns a random id for the Received header and the logs.
func newQueueID() string {
	var b [10]byte
	rand.Read(b[:])
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
}

// protocolName is the "with" value of the Received header: RFC 3848's
// ESMTP/ESMTPA/ESMTPS/ESMTPSA, RFC 6531 §3.7.3's UTF8SMTP forms, or SMTP for
// a plain HELO session (RFC 5321 §4.4).
func protocolName(helo string, utf8, tls, auth bool) string {
	base := "ESMTP"
	switch {
	case utf8:
		base = "UTF8SMTP"
	case helo == "HELO" && !tls && !auth:
		return "SMTP"
	}
	if tls {
		base += "S"
	}
	if auth {
		base += "A"
	}
	return base
}

// traceHeaders renders Return-Path and Received (RFC 5321 §4.4) for one
// message; "for" only when the transaction had a single recipient.
func (ss *session) traceHeaders(tx envelope, id string, now time.Time) string {
	greet := ""
	if ss.base != nil {
		greet = ss.base.greeting()
	}
	helo := sanitizeHelo(tx.helo)
	var b strings.Builder
	fmt.Fprintf(&b, "Return-Path: %s\r\n", quotePath(tx.from))
	fmt.Fprintf(&b, "Received: from %s (%s)\r\n", helo, addressLiteral(ss.ip))
	fmt.Fprintf(&b, "\tby %s (buzon) with %s id %s", ss.s.opts.Hostname,
		protocolName(greet, tx.utf8, ss.tls, tx.auth != ""), id)
	if len(tx.rcpts) == 1 {
		fmt.Fprintf(&b, "\r\n\tfor %s", quotePath(tx.rcpts[0]))
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", now.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	return b.String()
}

// readErr remembers the error of the client side of a copy, so that it can
// be told apart from a failure of the disk.
type readErr struct {
	r   io.Reader
	err error
	n   int64
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.n += int64(n)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// clientError maps an error reading the message from the client.
func clientError(err error) error {
	var se *gosmtp.SMTPError
	switch {
	case errors.Is(err, gosmtp.ErrDataTooLarge):
		return errTooLarge
	case errors.Is(err, gosmtp.ErrTooLongLine):
		return errLineTooLong
	case errors.As(err, &se):
		return se
	}
	return errAborted
}

// storageError maps a local failure: 452 4.3.1 for a full disk or quota,
// else 451 4.3.0 (SPEC §4). The detail goes to the log only.
func storageError(err error) error {
	if maildir.IsDiskFull(err) {
		return errDiskFull
	}
	return errTempFailure
}

// deliver streams one message into every recipient's Maildir. It returns
// nil (250) only after Commit: every copy fsynced, renamed into new/ and
// new/ fsynced (the maildir package's guarantee); on any error the
// delivery is aborted and nothing appears in new/.
func (s *Server) deliver(ss *session, tx envelope, r io.Reader) error {
	start := time.Now()
	if len(tx.users) == 0 {
		return errTempFailure
	}
	id := newQueueID()
	dyn := s.dyn.Load()
	transform := len(dyn.tcmd) > 0 && s.opts.TransformEnabled()
	hdr := ss.traceHeaders(tx, id, start)

	var (
		size int64
		err  error
	)
	if transform {
		size, err = s.deliverTransformed(ss, tx, r, id, hdr, dyn)
	} else {
		size, err = s.deliverPlain(ss, tx, r, id, hdr)
	}
	if err != nil {
		return err
	}
	if c := s.opts.Counters; c != nil {
		c.AddAccepted(1)
		c.AddDelivered(int64(len(tx.users)))
	}
	onoff := "off"
	if transform {
		onoff = "on"
	}
	s.log.Info("smtp message accepted", "id", id, "ip", ss.ipString(), "from", tx.from,
		"rcpts", strings.Join(tx.rcpts, ","), "size", size, "transform", onoff,
		"delivery_time", time.Since(start).Round(time.Millisecond))
	return nil
}

func (s *Server) deliverPlain(ss *session, tx envelope, r io.Reader, id, hdr string) (int64, error) {
	d, err := s.opts.Store.Begin(tx.users...)
	if err != nil {
		s.log.Error("smtp delivery begin", "id", id, "err", err)
		io.Copy(io.Discard, r)
		return 0, storageError(err)
	}
	if _, err := io.WriteString(d, hdr); err != nil {
		d.Abort()
		s.log.Error("smtp delivery write", "id", id, "err", err)
		return 0, storageError(err)
	}
	src := &readErr{r: r}
	// Neither side has ReadFrom or WriteTo, so io.Copy would allocate a
	// 32 KiB buffer for every message: reuse pooled ones.
	buf := s.copyBufs.Get().(*[]byte)
	_, err = io.CopyBuffer(d, src, *buf)
	s.copyBufs.Put(buf)
	if err != nil {
		d.Abort()
		if src.err != nil {
			s.log.Info("smtp message not received", "id", id, "ip", ss.ipString(), "err", src.err)
			return 0, clientError(src.err)
		}
		s.log.Error("smtp delivery write", "id", id, "err", err)
		return 0, storageError(err)
	}
	return src.n, s.commit(d, id)
}

func (s *Server) commit(d Delivery, id string) error {
	if _, err := d.Commit(); err != nil {
		d.Abort()
		s.log.Error("smtp delivery commit", "id", id, "err", err)
		return storageError(err)
	}
	return nil
}

// deliverTransformed spools the message to a file under SpoolDir (never
// memory), pipes it through the transformation command and delivers the
// command's output after the trace headers.
func (s *Server) deliverTransformed(ss *session, tx envelope, r io.Reader, id, hdr string, dyn *dynamic) (int64, error) {
	spool, err := os.CreateTemp(s.opts.SpoolDir, "smtp-spool-")
	if err != nil {
		s.log.Error("smtp spool", "id", id, "err", err)
		io.Copy(io.Discard, r)
		return 0, storageError(err)
	}
	// Unlinked at once: the open file is all we need, and a crash leaves
	// nothing behind.
	os.Remove(spool.Name())
	defer spool.Close()

	src := &readErr{r: r}
	if _, err := io.Copy(spool, src); err != nil {
		if src.err != nil {
			s.log.Info("smtp message not received", "id", id, "ip", ss.ipString(), "err", src.err)
			return 0, clientError(src.err)
		}
		s.log.Error("smtp spool write", "id", id, "err", err)
		return 0, storageError(err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return 0, storageError(err)
	}

	d, err := s.opts.Store.Begin(tx.users...)
	if err != nil {
		s.log.Error("smtp delivery begin", "id", id, "err", err)
		return 0, storageError(err)
	}
	if _, err := io.WriteString(d, hdr); err != nil {
		d.Abort()
		s.log.Error("smtp delivery write", "id", id, "err", err)
		return 0, storageError(err)
	}
	env := []string{
		"PATH=" + transformPath,
		"SENDER=" + tx.from,
		"RECIPIENTS=" + strings.Join(tx.rcpts, "\n"),
		"CLIENT_ADDR=" + ss.ipString(),
	}
	n, err := s.transform(dyn, spool, d, env, id)
	if err != nil {
		d.Abort()
		return 0, err
	}
	return n, s.commit(d, id)
}
