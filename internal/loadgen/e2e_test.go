package loadgen

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/internal/testserver"
	"github.com/buzon-mail/buzon/maildir"
)

// startServer starts the real buzon with the given users (password
// "secret12"). Each test has its own server, so they run in parallel.
func startServer(t *testing.T, opts testserver.Options, users ...string) *testserver.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the buzon binary")
	}
	t.Parallel()
	srv := testserver.Start(t, opts)
	for _, u := range users {
		srv.AddUser(t, u, "secret12")
	}
	return srv
}

func newFiles(t *testing.T, srv *testserver.Server, user string) []string {
	t.Helper()
	dir := filepath.Join(srv.DataDir, "mail", user, "new")
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range ents {
		paths = append(paths, filepath.Join(dir, e.Name()))
	}
	return paths
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSMTP(t *testing.T) {
	srv := startServer(t, testserver.Options{TLS: true}, "u1", "u2")
	ctx := testCtx(t)
	res, err := RunSMTP(ctx, SMTPConfig{
		Addr: srv.SMTP, Messages: 40, Size: 3000, Conns: 4, PerConn: 7,
		To: []string{"u1@example.test", "u2@example.test"}, PID: srv.PID(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 40 || res.Bytes != 40*3000 || len(res.Errors) != 0 {
		t.Fatalf("result: ops %d bytes %d errors %v", res.Ops, res.Bytes, res.Errors)
	}
	if res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 || res.Server == nil || res.Server.PeakKiB <= 0 {
		t.Errorf("latency %+v server %+v", res.Latency, res.Server)
	}
	if res.Name != "smtp 40x3000B c=4" || res.Params["conns"] != 4 {
		t.Errorf("name %q params %v", res.Name, res.Params)
	}
	if n1, n2 := len(newFiles(t, srv, "u1")), len(newFiles(t, srv, "u2")); n1 != 20 || n2 != 20 {
		t.Errorf("new/ holds %d and %d messages, want 20 each", n1, n2)
	}

	// A recipient that does not exist: every transaction refused at RCPT,
	// the connection goes on after RSET.
	res, err = RunSMTP(ctx, SMTPConfig{Addr: srv.SMTP, Messages: 5, Size: 500, Conns: 2, To: []string{"nobody@example.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 0 || res.Errors["550"] != 5 || len(res.Errors) != 1 {
		t.Errorf("unknown recipient: ops %d errors %v", res.Ops, res.Errors)
	}

	// AUTH PLAIN on the submission port, where MAIL needs it.
	res, err = RunSMTP(ctx, SMTPConfig{Addr: srv.Submission, Messages: 3, Size: 500, From: "u1@example.test",
		To: []string{"u2@example.test"}, Auth: &Account{"u1", "secret12"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 3 || len(res.Errors) != 0 || res.Params["auth_user"] != "u1" {
		t.Errorf("submission with AUTH: ops %d errors %v params %v", res.Ops, res.Errors, res.Params)
	}
	// STARTTLS (RFC 3207) on port 25, then AUTH over TLS.
	res, err = RunSMTP(ctx, SMTPConfig{Addr: srv.SMTP, Messages: 3, Size: 800, Conns: 1, StartTLS: true, InsecureTLS: true,
		Auth: &Account{"u2", "secret12"}, From: "u2@example.test", To: []string{"u1@example.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 3 || len(res.Errors) != 0 {
		t.Errorf("STARTTLS: ops %d errors %v", res.Ops, res.Errors)
	}
	// Verifying the certificate of a private CA fails the handshake.
	res, _ = RunSMTP(ctx, SMTPConfig{Addr: srv.SMTP, Messages: 1, Size: 800, StartTLS: true, To: []string{"u1@example.test"}})
	if res.Ops != 0 || res.Errors["tls"] != 1 {
		t.Errorf("STARTTLS with an unknown CA: ops %d errors %v", res.Ops, res.Errors)
	}

	// One attempt only: the server delays failed logins.
	res, _ = RunSMTP(ctx, SMTPConfig{Addr: srv.Submission, Messages: 1, Size: 500, To: []string{"u2@example.test"},
		Auth: &Account{"u1", "wrong"}})
	if res.Ops != 0 || res.Errors["535"] != 1 {
		t.Errorf("wrong password: ops %d errors %v", res.Ops, res.Errors)
	}
}

func TestSMTPNoServer(t *testing.T) {
	res, err := RunSMTP(testCtx(t), SMTPConfig{Addr: "127.0.0.1:1", Messages: 3, Size: 500, To: []string{"a@b"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 0 || res.Errors["dial"] != 3 {
		t.Errorf("ops %d errors %v", res.Ops, res.Errors)
	}
	if _, err := RunSMTP(testCtx(t), SMTPConfig{Addr: "127.0.0.1:1", Messages: 3, Size: 10, To: []string{"a@b"}}); err == nil {
		t.Error("size below the minimal header: no error")
	}
}

// A server that accepts and then says nothing: cancelling the context
// must end the run at once, not after the 30 s I/O timeout.
func TestCancelStopsPromptly(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result)
	go func() {
		res, _ := RunSMTP(ctx, SMTPConfig{Addr: l.Addr().String(), Messages: 10, Size: 500, Conns: 2, To: []string{"a@b"}})
		done <- res
	}()
	for range 2 {
		select {
		case c := <-accepted:
			defer c.Close()
		case <-time.After(10 * time.Second):
			t.Fatal("the load generator did not connect")
		}
	}
	cancel()
	select {
	case res := <-done:
		if res.Ops != 0 || len(res.Errors) != 0 {
			t.Errorf("cancelled run: ops %d errors %v (a cancellation is no error)", res.Ops, res.Errors)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RunSMTP still running 5 s after the cancellation")
	}
}

// mailboxOctets is the CRLF-form size of every message in user's new/,
// what POP3 must deliver.
func mailboxOctets(t *testing.T, srv *testserver.Server, user string) int64 {
	t.Helper()
	var sum int64
	for _, p := range newFiles(t, srv, user) {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		n, err := maildir.CRLFSize(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		sum += n
	}
	return sum
}

// fill delivers n messages of size octets to each user through SMTP.
func fill(t *testing.T, srv *testserver.Server, n, size int, users ...string) {
	t.Helper()
	var to []string
	for _, u := range users {
		to = append(to, u+"@example.test")
	}
	res, err := RunSMTP(testCtx(t), SMTPConfig{Addr: srv.SMTP, Messages: n * len(users), Size: size, Conns: 2, To: to})
	if err != nil || res.Ops != int64(n*len(users)) {
		t.Fatalf("filling mailboxes: %v, %+v", err, res)
	}
}

func TestPOP3(t *testing.T) {
	srv := startServer(t, testserver.Options{}, "u1", "u2")
	ctx := testCtx(t)
	fill(t, srv, 6, 2000, "u1")
	fill(t, srv, 6, 70000, "u2") // longer than the 64 KiB buffer
	want := mailboxOctets(t, srv, "u1") + mailboxOctets(t, srv, "u2")
	accts := []Account{{"u1", "secret12"}, {"u2", "secret12"}}

	for _, pipeline := range []int{0, 4} {
		res, err := RunPOP3(ctx, POP3Config{Addr: srv.POP3, Accounts: accts, Pipeline: pipeline, PID: srv.PID()})
		if err != nil {
			t.Fatal(err)
		}
		if res.Ops != 12 || res.Bytes != want || len(res.Errors) != 0 || res.Latency.P50 <= 0 || res.Server == nil {
			t.Errorf("pipeline %d: ops %d bytes %d (want %d) errors %v latency %+v", pipeline, res.Ops, res.Bytes, want, res.Errors, res.Latency)
		}
		if run, _ := res.Extra["run_elapsed_ns"].(int64); run <= int64(res.Elapsed) || res.Elapsed < res.Latency.Max {
			t.Errorf("pipeline %d: elapsed %v, whole run %v, max latency %v", pipeline, res.Elapsed, time.Duration(run), res.Latency.Max)
		}
		if wantP := map[int]int64{0: 0, 4: 2}[pipeline]; res.Extra["pipelined"] != wantP {
			t.Errorf("pipeline %d: %v clients pipelined, want %d", pipeline, res.Extra["pipelined"], wantP)
		}
	}

	res, err := RunPOP3(ctx, POP3Config{Addr: srv.POP3, Accounts: []Account{{"u1", "wrong"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 0 || res.Errors["-ERR"] != 1 {
		t.Errorf("wrong password: ops %d errors %v", res.Ops, res.Errors)
	}

	res, err = RunPOP3(ctx, POP3Config{Addr: srv.POP3, Accounts: accts, Delete: true, Pipeline: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 12 || res.Bytes != want || len(res.Errors) != 0 || res.Name != "pop3 c=2 pipeline=3 delete" {
		t.Errorf("delete: %q ops %d bytes %d errors %v", res.Name, res.Ops, res.Bytes, res.Errors)
	}
	for _, u := range []string{"u1", "u2"} {
		for _, sub := range []string{"new", "cur"} {
			ents, _ := os.ReadDir(filepath.Join(srv.DataDir, "mail", u, sub))
			if len(ents) != 0 {
				t.Errorf("%s/%s holds %d messages after DELE and QUIT", u, sub, len(ents))
			}
		}
	}
}

func TestPOP3List(t *testing.T) {
	srv := startServer(t, testserver.Options{}, "u1")
	fill(t, srv, 7, 600, "u1")
	res, err := RunPOP3List(testCtx(t), POP3ListConfig{Addr: srv.POP3, Account: Account{"u1", "secret12"}, Sessions: 5, PID: srv.PID()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 5 || len(res.Errors) != 0 || res.Extra["messages"] != 7 || res.Server == nil {
		t.Fatalf("ops %d errors %v extra %v", res.Ops, res.Errors, res.Extra)
	}
	login, list := res.Extra["login_p50_ns"].(int64), res.Extra["list_p50_ns"].(int64)
	if login <= 0 || list <= 0 || time.Duration(login+list) > res.Latency.Max {
		t.Errorf("login %d list %d latency %+v", login, list, res.Latency)
	}
	first, firstLogin := res.Extra["first_session_ns"].(int64), res.Extra["first_login_ns"].(int64)
	if firstLogin <= 0 || firstLogin > first || time.Duration(first) > res.Latency.Max {
		t.Errorf("first session %d, its login %d, latency %+v", first, firstLogin, res.Latency)
	}
}

func TestConns(t *testing.T) {
	srv := startServer(t, testserver.Options{YAML: "limits: {max_connections_per_ip: 100, max_connections: 100}"})
	res, err := RunConns(testCtx(t), ConnsConfig{SMTPAddr: srv.SMTP, POP3Addr: srv.POP3, Count: 40, Parallel: 10,
		Hold: time.Millisecond, PID: srv.PID()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 40 || len(res.Errors) != 0 || res.Latency.P50 <= 0 || res.Extra["greeted"] != int64(40) {
		t.Fatalf("ops %d errors %v latency %+v extra %v", res.Ops, res.Errors, res.Latency, res.Extra)
	}
	idle, _ := res.Extra["rss_idle_kib"].(int64)
	held, _ := res.Extra["rss_held_kib"].(int64)
	per, _ := res.Extra["rss_per_conn_kib"].(float64)
	if idle <= 0 || held <= 0 || per <= 0 {
		t.Errorf("rss idle %d held %d per connection %v", idle, held, per)
	}
	t.Logf("rss idle %d KiB, held %d KiB, %.1f KiB per connection", idle, held, per)

	// Over the per-address limit the server refuses with 421 / -ERR.
	res, err = RunConns(testCtx(t), ConnsConfig{SMTPAddr: srv.SMTP, POP3Addr: srv.POP3, Count: 110, Parallel: 110, Hold: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// (Connections of the run before may still count for a moment.)
	refused := res.Errors["421"] + res.Errors["-ERR"]
	if res.Ops > 100 || refused < 10 || res.Ops+refused != 110 {
		t.Errorf("over the limit: ops %d errors %v", res.Ops, res.Errors)
	}
	if _, err := RunConns(testCtx(t), ConnsConfig{SMTPAddr: srv.SMTP, Count: 1 << 30}); err == nil {
		t.Error("more connections than the file limit allows: no error")
	}
}
