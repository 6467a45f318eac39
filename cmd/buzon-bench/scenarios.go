package main

import (
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/buzon-mail/buzon/internal/loadgen"
)

func newSMTPCmd() *cobra.Command {
	var (
		o    output
		cfg  loadgen.SMTPConfig
		auth string
	)
	c := &cobra.Command{
		Use:   "smtp",
		Short: "Send N messages of S octets over C connections, many transactions per connection",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if auth != "" {
				a, err := parseAccount(auth)
				if err != nil {
					return err
				}
				cfg.Auth = &a
			}
			cfg.Progress, cfg.Name = o.progress(c), o.name
			res, err := loadgen.RunSMTP(c.Context(), cfg)
			return o.report(c, res, err)
		},
	}
	o.flags(c)
	f := c.Flags()
	f.StringVar(&cfg.Addr, "addr", "127.0.0.1:25", "SMTP server host:port")
	f.IntVarP(&cfg.Messages, "messages", "n", 1000, "transactions in total")
	f.IntVarP(&cfg.Size, "size", "s", 4096, "message size in octets (CRLF form, exact)")
	f.IntVarP(&cfg.Conns, "conns", "c", 1, "concurrent connections")
	f.IntVar(&cfg.PerConn, "per-conn", 0, "transactions per connection before QUIT and a new one (0: no limit)")
	f.StringVar(&cfg.From, "from", "bench@localhost", "envelope sender")
	f.StringArrayVar(&cfg.To, "to", nil, "recipient, used round-robin (repeatable; at least one)")
	f.StringVar(&auth, "auth", "", "AUTH PLAIN as user:pass (or user, password from $BUZON_BENCH_PASSWORD)")
	f.BoolVar(&cfg.StartTLS, "starttls", false, "STARTTLS before AUTH and mail")
	f.BoolVar(&cfg.InsecureTLS, "insecure", false, "do not verify the server's certificate")
	f.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "limit of each read or write")
	f.IntVar(&cfg.PID, "pid", 0, "server process to sample the RSS of")
	return c
}

func newPOP3Cmd() *cobra.Command {
	var (
		o     output
		cfg   loadgen.POP3Config
		users []string
	)
	c := &cobra.Command{
		Use:   "pop3",
		Short: "One client per account RETR-ing every message, optionally with DELE",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if len(users) == 0 {
				return errors.New("pop3: at least one --user")
			}
			for _, u := range users {
				a, err := parseAccount(u)
				if err != nil {
					return err
				}
				cfg.Accounts = append(cfg.Accounts, a)
			}
			cfg.Progress, cfg.Name = o.progress(c), o.name
			res, err := loadgen.RunPOP3(c.Context(), cfg)
			return o.report(c, res, err)
		},
	}
	o.flags(c)
	f := c.Flags()
	f.StringVar(&cfg.Addr, "addr", "127.0.0.1:110", "POP3 server host:port")
	f.StringArrayVar(&users, "user", nil, "account user:pass, one concurrent client each (repeatable)")
	f.BoolVar(&cfg.Delete, "delete", false, "DELE every message after RETR and QUIT to commit")
	f.IntVar(&cfg.Pipeline, "pipeline", 0, "RETR commands in flight when the server offers PIPELINING (<=1: none)")
	f.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "limit of each read or write")
	f.IntVar(&cfg.PID, "pid", 0, "server process to sample the RSS of")
	return c
}

func newPOP3ListCmd() *cobra.Command {
	var (
		o    output
		cfg  loadgen.POP3ListConfig
		user string
	)
	c := &cobra.Command{
		Use:   "pop3-list",
		Short: "Repeat login, STAT, LIST, UIDL, QUIT on one mailbox, one session at a time",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			a, err := parseAccount(user)
			if err != nil {
				return err
			}
			cfg.Account = a
			cfg.Progress, cfg.Name = o.progress(c), o.name
			res, err := loadgen.RunPOP3List(c.Context(), cfg)
			return o.report(c, res, err)
		},
	}
	o.flags(c)
	f := c.Flags()
	f.StringVar(&cfg.Addr, "addr", "127.0.0.1:110", "POP3 server host:port")
	f.StringVar(&user, "user", "", "account user:pass")
	f.IntVar(&cfg.Sessions, "sessions", 10, "sessions, one after the other")
	f.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "limit of each read or write")
	f.IntVar(&cfg.PID, "pid", 0, "server process to sample the RSS of")
	return c
}

func newConnsCmd() *cobra.Command {
	var (
		o   output
		cfg loadgen.ConnsConfig
	)
	c := &cobra.Command{
		Use:   "conns",
		Short: "Open and hold idle SMTP and POP3 connections; with --pid, the server's RSS per connection",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg.Progress, cfg.Name = o.progress(c), o.name
			res, err := loadgen.RunConns(c.Context(), cfg)
			return o.report(c, res, err)
		},
	}
	o.flags(c)
	f := c.Flags()
	f.StringVar(&cfg.SMTPAddr, "smtp-addr", "127.0.0.1:25", "SMTP server host:port (empty: POP3 only)")
	f.StringVar(&cfg.POP3Addr, "pop3-addr", "127.0.0.1:110", "POP3 server host:port (empty: SMTP only)")
	f.IntVar(&cfg.Count, "count", 1000, "connections to open and hold")
	f.IntVar(&cfg.Parallel, "parallel", 200, "dials in flight at once")
	f.DurationVar(&cfg.Hold, "hold", time.Second, "how long to hold them after the last greeting")
	f.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "limit of each dial and greeting")
	f.IntVar(&cfg.PID, "pid", 0, "server process to sample the RSS of")
	return c
}

func newDiskCmd() *cobra.Command {
	var (
		o   output
		cfg loadgen.DiskConfig
	)
	c := &cobra.Command{
		Use:   "disk",
		Short: "The disk's own limit for durable deliveries: write, fsync, rename, fsync the directory",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg.Progress, cfg.Name = o.progress(c), o.name
			res, err := loadgen.RunDisk(c.Context(), cfg)
			return o.report(c, res, err)
		},
	}
	o.flags(c)
	f := c.Flags()
	f.StringVar(&cfg.Dir, "dir", "", "directory on the disk to measure (tmp/ and new/ are made inside; required)")
	f.IntVar(&cfg.Workers, "workers", 20, "goroutines writing at once")
	f.IntVar(&cfg.Ops, "ops", 1000, "durable writes in total")
	f.IntVar(&cfg.Size, "size", 4096, "octets per file")
	return c
}
