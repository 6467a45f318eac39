package client

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// scripted runs a fake server that sends greeting and then, for every line
// read, the next canned answer.
func scripted(t *testing.T, greeting string, answers ...string) *Client {
	t.Helper()
	srv, cli := net.Pipe()
	t.Cleanup(func() { srv.Close(); cli.Close() })
	go func() {
		io.WriteString(srv, greeting)
		buf := make([]byte, 512)
		for _, a := range answers {
			if _, err := srv.Read(buf); err != nil {
				return
			}
			io.WriteString(srv, a)
		}
	}()
	c := NewClient(cli)
	c.Timeout = 5 * time.Second
	if err := c.ReadGreeting(); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestReplies(t *testing.T) {
	c := scripted(t, "+OK buzon MGMT 1.0 ready\r\n",
		"+OK CAPA\r\nCAPA\r\nUSER <name>\r\n.\r\n",
		"+OK USER\r\n", "+OK PASS\r\n",
		"+OK USERS\r\nUSER COUNT: 2\r\n..hidden\r\nbob\r\n.\r\n",
		"-ERR INVALID MAX USERS\r\n",
		"-ERR\n",
		"+OK GOODBYE\r\n")
	if c.Version() != "1.0" {
		t.Fatalf("version %q", c.Version())
	}
	var traced []string
	c.Trace = func(l string) { traced = append(traced, l) }
	r, err := c.Do("CAPA")
	if err != nil || !r.OK || r.Status != "CAPA" || strings.Join(r.Lines, "|") != "CAPA|USER <name>" {
		t.Fatalf("CAPA %+v %v", r, err)
	}
	if err := c.Login("admin", "pw"); err != nil {
		t.Fatal(err)
	}
	r, err = c.Do("USERS")
	if err != nil || !r.OK {
		t.Fatalf("USERS %+v %v", r, err)
	}
	fields, bare := r.Fields()
	if fields["USER COUNT"] != "2" || strings.Join(bare, "|") != ".hidden|bob" {
		t.Fatalf("fields %v bare %q", fields, bare)
	}
	if n, ok := r.Int("USER COUNT"); !ok || n != 2 {
		t.Fatal("Int")
	}
	r, err = c.Do("MAX_USERS", "0")
	var me *Error
	if err != nil || r.OK || !errors.As(r.Err(), &me) || me.Reason != "INVALID MAX USERS" {
		t.Fatalf("-ERR %+v %v", r, err)
	}
	r, err = c.Do("BOGUS")
	if err != nil || r.OK || r.Status != "" || r.Err().Error() != "-ERR" {
		t.Fatalf("bare -ERR %+v %v", r, err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	want := "+OK CAPA|CAPA|USER <name>|+OK USER|+OK PASS|+OK USERS|USER COUNT: 2|.hidden|bob|-ERR INVALID MAX USERS|-ERR|+OK GOODBYE"
	if got := strings.Join(traced, "|"); got != want {
		t.Fatalf("trace\n got %s\nwant %s", got, want)
	}
}

func TestBadServer(t *testing.T) {
	srv, cli := net.Pipe()
	defer srv.Close()
	go io.WriteString(srv, "220 smtp.example ESMTP\r\n")
	c := NewClient(cli)
	if err := c.ReadGreeting(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("SMTP greeting accepted: %v", err)
	}
	if err := c.Send("USER", "a\r\nPASS x"); err == nil {
		t.Fatal("line break in argument sent")
	}
}

// A peer streaming an endless line is a protocol error, not a memory sink.
func TestOverlongServerLine(t *testing.T) {
	srv, cli := net.Pipe()
	defer srv.Close()
	defer cli.Close()
	go io.WriteString(srv, "+OK "+strings.Repeat("x", 1<<20)+"\r\n")
	c := NewClient(cli)
	if err := c.ReadGreeting(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("overlong greeting: %v", err)
	}
}

// FuzzReadReply feeds arbitrary server output to the reply parser: it must
// return a reply or an error, never panic, and a reply's lines never hold
// a line break.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"+OK STATUS\r\nHISTORIC CONNECTIONS: 4\r\n.\r\n", "-ERR\r\n", "-ERR USER NOT FOUND\r\n",
		"+OK USERS\r\nUSER COUNT: 1\r\n..hidden\r\n.\r\n", "+OK\r\n", "220 smtp\r\n", "+OK CAPA\n.\n",
		"+OK X\r\nno end", "\x00\xff\r\n", "",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, data string, multi bool) {
		srv, cli := net.Pipe()
		defer cli.Close()
		go func() { io.WriteString(srv, data); srv.Close() }()
		c := NewClient(cli)
		r, err := c.ReadReply(multi)
		if err != nil {
			return
		}
		for _, l := range append([]string{r.Status}, r.Lines...) {
			if strings.ContainsAny(l, "\n") {
				t.Fatalf("line break in %q", l)
			}
		}
		if !r.OK && len(r.Lines) > 0 {
			t.Fatalf("-ERR with data lines: %+v", r)
		}
		r.Fields()
	})
}
