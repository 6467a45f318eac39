package smtp

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/buzon-mail/buzon/internal/testserver"
)

// durableBody is the message for id: a few tens of KB, ending in a marker,
// so that a partial file is recognisable.
func durableBody(id string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Subject: %s\r\n\r\n", id)
	n := 200 + int(id[len(id)-1])%7*100
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%s line %04d 0123456789abcdefghijklmnopqrstuvwxyz\r\n", id, i)
	}
	fmt.Fprintf(&b, "END %s\r\n", id)
	return b.String()
}

// TestDurabilityUnderSIGKILL runs the real server, sends from several
// goroutines, kills it with SIGKILL at a random moment, restarts it, and
// checks over several cycles that every message answered 250 is present
// and complete, and that new/ never holds a partial file.
func TestDurabilityUnderSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	ts := testserver.Start(t, testserver.Options{})
	ts.AddUser(t, "alice", "alicepw")

	var (
		mu    sync.Mutex
		acked = map[string]bool{}
	)
	const cycles, senders = 4, 4
	for cycle := 0; cycle < cycles; cycle++ {
		var wg sync.WaitGroup
		var stop sync.Once
		done := make(chan struct{})
		count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
		base := count()
		for g := 0; g < senders; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-done:
						return
					default:
					}
					id := fmt.Sprintf("c%dg%di%d", cycle, g, i)
					c, err := gosmtp.Dial(ts.SMTP)
					if err != nil {
						return // killed
					}
					err = c.SendMail("load@remote.test", []string{"alice@localhost"}, strings.NewReader(durableBody(id)))
					c.Close()
					if err != nil {
						return
					}
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
			}()
		}
		// Let some messages through, then kill at a random moment.
		waitFor(t, "messages acknowledged before the kill", func() bool { return count() >= base+senders })
		time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond) // the random moment, not synchronisation
		ts.Kill()
		stop.Do(func() { close(done) })
		wg.Wait()
		ts.Restart(t)
	}

	files := map[string]string{}
	for _, sub := range []string{"new", "cur"} {
		dir := filepath.Join(ts.DataDir, "mail", "alice", sub)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			i := strings.Index(s, "\nSubject: ")
			if i < 0 {
				t.Fatalf("%s/%s: no Subject", sub, e.Name())
			}
			id := strings.TrimSpace(s[i+10 : i+10+strings.IndexByte(s[i+10:], '\n')])
			want := strings.ReplaceAll(durableBody(id), "\r\n", "\n")
			if !strings.HasSuffix(s, want) || !strings.HasPrefix(s, "Return-Path: <load@remote.test>\n") {
				t.Fatalf("%s/%s is partial or damaged (%d bytes)", sub, e.Name(), len(b))
			}
			files[id] = e.Name()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for id := range acked {
		if _, ok := files[id]; !ok {
			t.Errorf("acknowledged message %s lost", id)
		}
	}
	t.Logf("%d acknowledged, %d stored over %d kill cycles", len(acked), len(files), cycles)
}

// TestServeRefusals runs the real server: the connection limit and the
// MGMT pause answer 421 with their enhanced codes on every SMTP listener,
// inside TLS on the implicit-TLS one.
func TestServeRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	ts := testserver.Start(t, testserver.Options{TLS: true, YAML: "limits:\n  max_connections_per_ip: 1\n"})
	// The server counts out the connections that probed its ports at start
	// on its own time: until then the one slot may still be taken.
	var first *dialog
	waitFor(t, "the one connection allowed", func() bool {
		c, err := net.DialTimeout("tcp", ts.SMTP, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		d := &dialog{t: t, c: c, r: bufio.NewReader(c)}
		if l := d.reply(); !strings.HasPrefix(l, "220 ") {
			c.Close()
			return false
		}
		t.Cleanup(func() { c.Close() })
		first = d
		return true
	})
	for _, addr := range []string{ts.SMTP, ts.Submission} {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if !strings.HasPrefix(line, "421 4.7.0 mx.buzon.test Too many connections") {
			t.Fatalf("%s: got %q", addr, line)
		}
	}
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ts.SMTPTLS, ts.Cert.Client)
	if err != nil {
		t.Fatal(err)
	}
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(tc).ReadString('\n')
	tc.Close()
	if !strings.HasPrefix(line, "421 4.7.0 ") {
		t.Fatalf("implicit TLS: got %q", line)
	}
	first.cmd("QUIT", "221 ")
	first.c.Close()

	// Pause through MGMT; the TIMEOUT reply only comes when it ends.
	m, err := net.DialTimeout("tcp", ts.MGMT, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mr := bufio.NewReader(m)
	fmt.Fprintf(m, "USER admin\r\nPASS %s\r\nTIMEOUT 30\r\n", ts.AdminPassword)
	for i := 0; i < 3; i++ { // greeting, +OK USER, +OK PASS
		m.SetReadDeadline(time.Now().Add(10 * time.Second))
		if l, err := mr.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
			t.Fatalf("mgmt: %q %v", l, err)
		}
	}
	waitFor(t, "the pause to refuse SMTP", func() bool {
		c, err := net.DialTimeout("tcp", ts.SMTP, 5*time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		l, _ := bufio.NewReader(c).ReadString('\n')
		return strings.HasPrefix(l, "421 4.3.2 mx.buzon.test Service paused")
	})
}

// TestServeConnectionFlood runs the real server, behind its connection
// accounting (20 per address by default): 500 connections opened and
// dropped — some at once, some mid-command, some mid-DATA — must all be
// counted out again, and the server then answers and delivers normally.
func TestServeConnectionFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	ts := testserver.Start(t, testserver.Options{})
	ts.AddUser(t, "alice", "alicepw")
	for i := 0; i < 500; i++ {
		addr := ts.SMTP
		if i%5 == 4 {
			addr = ts.Submission
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 1:
			c.Write([]byte("EHLO x\r\nMAIL FROM:<"))
		case 2:
			c.Write([]byte("EHLO x\r\nMAIL FROM:<x@remote.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nSubject: cut\r\n\r\npart"))
		}
		c.Close()
	}
	// The server notices each drop on its own time; until it has, the
	// per-address limit may still refuse with 421.
	waitFor(t, "a normal delivery after the flood", func() bool {
		return sendMail(ts.SMTP, "x@remote.test", []string{"alice@localhost"}, strings.NewReader(simpleMsg)) == nil
	})
	new, err := os.ReadDir(filepath.Join(ts.DataDir, "mail", "alice", "new"))
	if err != nil || len(new) != 1 {
		t.Fatalf("alice/new: %d files, %v (want only the message sent after the flood)", len(new), err)
	}
	tmp, _ := os.ReadDir(filepath.Join(ts.DataDir, "mail", "alice", "tmp"))
	if len(tmp) != 0 {
		t.Fatalf("%d files left in tmp/", len(tmp))
	}
	// All 20 per-address slots are free again (the delivery's own
	// connection is counted out when the server closes it).
	waitFor(t, "20 connections greeted at once", func() bool {
		ok := 0
		for i := 0; i < 20; i++ {
			c, err := net.DialTimeout("tcp", ts.SMTP, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if l, _ := bufio.NewReader(c).ReadString('\n'); strings.HasPrefix(l, "220 ") {
				ok++
			}
		}
		return ok == 20
	})
}
