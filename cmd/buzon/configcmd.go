package main

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/buzon-mail/buzon/config"
	"github.com/buzon-mail/buzon/internal/state"
	"github.com/spf13/cobra"
)

// loadConfig loads the configuration with the flags of cmd.
func loadConfig(cmd *cobra.Command, g *globals) (*config.Config, *config.Meta, []string, error) {
	return config.Load(config.Options{File: g.configFile, Flags: cmd.Flags()})
}

// loadConfigNoRuntime loads it without data_dir/state.json.
func loadConfigNoRuntime(cmd *cobra.Command, g *globals) (*config.Config, error) {
	cfg, _, _, err := config.Load(config.Options{File: g.configFile, Flags: cmd.Flags(), NoRuntime: true})
	return cfg, err
}

// addServeFlags defines the flags that set configuration keys (see
// config.FlagKeys); serve, config check and config print share them.
func addServeFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayP("domain", "d", nil, "mail domain (repeatable; replaces domains)")
	f.StringSliceP("smtp-listen", "s", nil, "SMTP address host:port, or a bare port on 127.0.0.1 (repeatable)")
	f.StringSlice("pop3-listen", nil, "POP3 address host:port, or a bare port on 127.0.0.1 (repeatable)")
	f.StringSliceP("mgmt-listen", "p", nil, "MGMT address host:port, or a bare port on 127.0.0.1 (repeatable)")
	f.StringP("log-file", "l", "", "log file (default stderr)")
	f.StringP("log-level", "L", "", "log level: debug, info, warn, error")
	f.StringP("transform", "t", "", "transformation command line (split like a shell would; does not enable it)")
}

func newConfigCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "config",
		Short: "Check, print or reset the configuration",
	}
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration; exit non-zero naming the bad key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, meta, warns, err := loadConfig(cmd, g)
			if err != nil {
				return err
			}
			for _, w := range warns {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			file := meta.File
			if file == "" {
				file = "no file, defaults"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "configuration OK (%s)\n", file)
			return nil
		},
	}
	addServeFlags(check)
	print := &cobra.Command{
		Use:   "print",
		Short: "Print every key with its effective value and source (secrets masked)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, meta, warns, err := loadConfig(cmd, g)
			if err != nil {
				return err
			}
			for _, w := range warns {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			if meta.File != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "# file: %s\n", meta.File)
			}
			return config.Print(cmd.OutOrStdout(), cfg, meta)
		},
	}
	addServeFlags(print)
	reset := &cobra.Command{
		Use:   "reset-runtime",
		Short: "Forget the values set at run time through MGMT (data_dir/state.json)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfigNoRuntime(cmd, g)
			if err != nil {
				return err
			}
			if err := state.Reset(cfg.StatePath()); err != nil {
				return fmt.Errorf("reset run-time values: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "run-time values cleared: the configuration applies at the next start or SIGHUP")
			if addr := runningServer(cfg); addr != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: a buzon server answers on %s: it keeps its run-time values "+
					"until it re-reads state.json; send it SIGHUP now\n", addr)
			}
			return nil
		},
	}
	c.AddCommand(check, print, reset)
	return c
}

// runningServer returns the first mgmt.listen address of cfg where a buzon
// MGMT server greets, or "". A running server holds the run-time values in
// memory, so `config reset-runtime` takes effect there at its next SIGHUP.
func runningServer(cfg *config.Config) string {
	for _, a := range cfg.MGMT.Listen {
		host, port, err := net.SplitHostPort(a)
		if err != nil || port == "0" {
			continue
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		addr := net.JoinHostPort(host, port)
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			continue
		}
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		greeting, _ := bufio.NewReader(c).ReadString('\n')
		_, _ = c.Write([]byte("QUIT\r\n"))
		c.Close()
		if strings.HasPrefix(greeting, "+OK buzon MGMT") {
			return addr
		}
	}
	return ""
}
