package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/buzon-mail/buzon/config"
	"github.com/buzon-mail/buzon/maildir"
	"github.com/buzon-mail/buzon/users"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// userEnv is what the user commands work on: the store, directly.
type userEnv struct {
	cfg   *config.Config
	store *users.Store
	mail  *maildir.Store
}

func openUserEnv(cmd *cobra.Command, g *globals) (*userEnv, error) {
	cfg, _, _, err := loadConfig(cmd, g)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data_dir: %w", err)
	}
	max := cfg.Limits.MaxUsers // includes the run-time value (state.json)
	store, err := users.Open(cfg.DataDir, users.Options{MaxUsers: func() int { return max }, BcryptCost: g.bcryptCost})
	if err != nil {
		return nil, fmt.Errorf("open user store: %w", err)
	}
	mail, err := maildir.New(filepath.Join(cfg.DataDir, "mail"), maildir.Options{Hostname: cfg.Hostname})
	if err != nil {
		return nil, fmt.Errorf("open maildir store: %w", err)
	}
	return &userEnv{cfg: cfg, store: store, mail: mail}, nil
}

func newUserCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "user",
		Short: "Manage accounts (works on the store directly; a running server sees changes at the next login)",
	}

	var admin, addStdin bool
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Create an account and its Maildir",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := users.Normalize(args[0])
			if err != nil {
				return fmt.Errorf("user add %q: %w", args[0], err)
			}
			env, err := openUserEnv(cmd, g)
			if err != nil {
				return err
			}
			pw, err := readPassword(cmd, addStdin)
			if err != nil {
				return err
			}
			if err := env.store.Add(name, pw, admin); err != nil {
				return fmt.Errorf("user add %s: %w", name, err)
			}
			if err := env.mail.Create(name); err != nil {
				return fmt.Errorf("user add %s: create maildir: %w", name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s added\n", name)
			return nil
		},
	}
	add.Flags().BoolVar(&admin, "admin", false, "the account may log in to MGMT")
	add.Flags().BoolVar(&addStdin, "password-stdin", false, "read the password from the first line of standard input")

	del := &cobra.Command{
		Use:   "del NAME",
		Short: "Delete an account; its Maildir is kept under data_dir/deleted/",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := users.Normalize(args[0])
			if err != nil {
				return fmt.Errorf("user del %q: %w", args[0], err)
			}
			env, err := openUserEnv(cmd, g)
			if err != nil {
				return err
			}
			// Hold the maildrop lock from the check to the archive, so a
			// POP3 session cannot open the maildrop in between.
			if md, err := env.mail.Maildir(name); err == nil {
				lk, err := md.Lock()
				if errors.Is(err, maildir.ErrLocked) {
					return fmt.Errorf("user del %s: a POP3 session holds the maildrop; try again later", name)
				}
				if err != nil {
					return fmt.Errorf("user del %s: %w", name, err)
				}
				defer func() { _ = lk.Release() }()
			}
			if err := env.store.Delete(name); err != nil {
				return fmt.Errorf("user del %s: %w", name, err)
			}
			if env.mail.Exists(name) {
				dst, err := env.mail.Archive(name, filepath.Join(env.cfg.DataDir, "deleted"))
				if err != nil {
					return fmt.Errorf("user del %s: account deleted, but archiving its maildir failed: %w", name, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "user %s deleted; mail kept in %s\n", name, dst)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s deleted\n", name)
			return nil
		},
	}

	var passwdStdin bool
	passwd := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Change an account's password",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := users.Normalize(args[0])
			if err != nil {
				return fmt.Errorf("user passwd %q: %w", args[0], err)
			}
			env, err := openUserEnv(cmd, g)
			if err != nil {
				return err
			}
			if _, err := env.store.Lookup(name); err != nil {
				return fmt.Errorf("user passwd %s: %w", name, err)
			}
			pw, err := readPassword(cmd, passwdStdin)
			if err != nil {
				return err
			}
			if err := env.store.SetPassword(name, pw); err != nil {
				return fmt.Errorf("user passwd %s: %w", name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "password of %s changed\n", name)
			return nil
		},
	}
	passwd.Flags().BoolVar(&passwdStdin, "password-stdin", false, "read the password from the first line of standard input")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the accounts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := openUserEnv(cmd, g)
			if err != nil {
				return err
			}
			us, err := env.store.List()
			if err != nil {
				return fmt.Errorf("user list: %w", err)
			}
			for _, u := range us {
				if u.Admin {
					fmt.Fprintf(cmd.OutOrStdout(), "%s\tadmin\n", u.Name)
				} else {
					fmt.Fprintln(cmd.OutOrStdout(), u.Name)
				}
			}
			return nil
		},
	}
	c.AddCommand(add, del, passwd, list)
	return c
}

// readPassword reads the password from the first line of stdin
// (--password-stdin) or from the terminal, without echo, twice. It is never
// taken from argv, where the process list would show it.
func readPassword(cmd *cobra.Command, fromStdin bool) (string, error) {
	in := cmd.InOrStdin()
	if fromStdin {
		line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", errors.New("--password-stdin: no password on standard input")
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	f, ok := in.(*os.File)
	if !ok || !isTerminal(int(f.Fd())) {
		return "", errors.New("standard input is not a terminal: give the password with --password-stdin")
	}
	pw1, err := promptNoEcho(f, cmd.ErrOrStderr(), "Password: ")
	if err != nil {
		return "", err
	}
	pw2, err := promptNoEcho(f, cmd.ErrOrStderr(), "Again: ")
	if err != nil {
		return "", err
	}
	if pw1 != pw2 {
		return "", errors.New("the passwords differ")
	}
	return pw1, nil
}

func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// promptNoEcho turns terminal echo off while one line is read.
func promptNoEcho(f *os.File, out io.Writer, prompt string) (string, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", fmt.Errorf("terminal: %w", err)
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", fmt.Errorf("terminal: %w", err)
	}
	defer func() {
		_ = unix.IoctlSetTermios(fd, unix.TCSETS, old)
		fmt.Fprintln(out)
	}()
	fmt.Fprint(out, prompt)
	// Read byte by byte so nothing after the line is consumed.
	var b strings.Builder
	buf := make([]byte, 1)
	for b.Len() < 4096 {
		n, err := f.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return strings.TrimRight(b.String(), "\r"), nil
			}
			b.WriteByte(buf[0])
		}
		if err != nil {
			if b.Len() > 0 && errors.Is(err, io.EOF) {
				break
			}
			return "", fmt.Errorf("read password: %w", err)
		}
	}
	return strings.TrimRight(b.String(), "\r"), nil
}
