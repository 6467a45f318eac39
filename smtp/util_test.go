package smtp

import (
	"context"
	"io"
	"net"
	netsmtp "net/smtp"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

var errDeadline = context.DeadlineExceeded

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func netDial(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }

// sendMail sends one message in clear text with the go-smtp client (its
// SendMail helper would insist on STARTTLS with the system roots).
func sendMail(addr, from string, to []string, r io.Reader) error {
	c, err := gosmtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail(from, to, r); err != nil {
		return err
	}
	return c.Quit()
}

// netSendMail does the same with the standard library's net/smtp.
func netSendMail(addr, from string, to []string, msg string) error {
	c, err := netsmtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, a := range to {
		if err := c.Rcpt(a); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
