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
	first := dial(t, ts.SMTP)
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
