package main

import (
	"fmt"

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
			fmt.Fprintln(cmd.OutOrStdout(), "run-time values cleared; restart a running server so that it drops its own")
			return nil
		},
	}
	c.AddCommand(check, print, reset)
	return c
}
