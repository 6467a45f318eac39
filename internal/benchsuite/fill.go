package benchsuite

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/buzon-mail/buzon/maildir"
)

// fillMaildir writes n distinct messages of about size octets into user's
// Maildir under dataDir/mail with the maildir package's bulk mode (one
// syncfs and one directory fsync for all), the way an import would. The
// store is opened as `buzon serve` opens it, so names match its own.
func fillMaildir(ctx context.Context, dataDir, user string, n, size int) error {
	store, err := maildir.New(filepath.Join(dataDir, "mail"), maildir.Options{Hostname: Hostname})
	if err != nil {
		return fmt.Errorf("fill %s: %w", user, err)
	}
	b, err := store.Batch(user)
	if err != nil {
		return fmt.Errorf("fill %s: %w", user, err)
	}
	var msg bytes.Buffer
	date := time.Now()
	for i := range n {
		if i%1000 == 0 && ctx.Err() != nil {
			_ = b.Close()
			return fmt.Errorf("fill %s: %w", user, ctx.Err())
		}
		listMessage(&msg, user, i, size, date)
		if _, err := b.Add(&msg); err != nil {
			_ = b.Close()
			return fmt.Errorf("fill %s: message %d: %w", user, i, err)
		}
	}
	if err := b.Close(); err != nil {
		return fmt.Errorf("fill %s: %w", user, err)
	}
	return nil
}

// bodyLine is one line of printable text; messages differ in their header
// and in a counter at the start of every body line.
const bodyLine = "The quick brown fox jumps over the lazy dog while buzon counts the octets"

// listMessage writes message i into buf (reset first): an RFC 5322 header
// with a unique Message-ID, then body lines up to about size octets in CRLF
// form. The message is small (a few KiB), so building it whole is fine.
func listMessage(buf *bytes.Buffer, user string, i, size int, date time.Time) {
	buf.Reset()
	id := strconv.Itoa(i)
	buf.WriteString("From: Bench <bench@" + Domain + ">\r\n")
	buf.WriteString("To: " + user + "@" + Domain + "\r\n")
	buf.WriteString("Subject: pop3-list message " + id + "\r\n")
	buf.WriteString("Date: " + date.Add(time.Duration(i)*time.Second).Format(time.RFC1123Z) + "\r\n")
	buf.WriteString("Message-ID: <" + id + ".list@" + Hostname + ">\r\n")
	buf.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	for line := 0; buf.Len() < size; line++ {
		fmt.Fprintf(buf, "%s-%04d %s\r\n", id, line, bodyLine)
	}
}
