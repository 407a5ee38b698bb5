package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
)

// userConfig is the client-side config file, ~/.config/slipway/config.yaml:
//
//	server: https://slipway.example.com   # like --server / SLIPWAY_SERVER
//	token: s3cr3t                        # like SLIPWAY_TOKEN
//	queue: sagemaker-queue               # launch's -q when none is given
//	tls_ca: /etc/slipway/ca.pem          # like --tls-ca / SLIPWAY_TLS_CA
//
// Flags win over environment variables, which win over the file.
type userConfig struct {
	Server string `yaml:"server,omitempty"`
	Token  string `yaml:"token,omitempty"`
	Queue  string `yaml:"queue,omitempty"`
	TLSCA  string `yaml:"tls_ca,omitempty"`
}

// configKeys are the keys of userConfig, in the file's order.
var configKeys = []string{"server", "token", "queue", "tls_ca"}

// maxConfigFile bounds the config file: it holds three short strings.
const maxConfigFile = 64 << 10

// configPath returns the config file to read: $SLIPWAY_CONFIG, else
// config.yaml under $XDG_CONFIG_HOME/slipway, else ~/.config/slipway.
func configPath() string {
	if p := os.Getenv("SLIPWAY_CONFIG"); p != "" {
		return p
	}
	if dir := os.Getenv("XDG_CONFIG_HOME"); dir != "" && filepath.IsAbs(dir) {
		return filepath.Join(dir, "slipway", "config.yaml")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".config", "slipway", "config.yaml")
}

// parseUserConfig decodes a config file strictly: an unknown key is an
// error that names it.
func parseUserConfig(b []byte) (userConfig, error) {
	var c userConfig
	if len(b) > maxConfigFile {
		return c, fmt.Errorf("%w: config file is %d bytes: want at most %d", job.ErrInvalid, len(b), maxConfigFile)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return c, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return userConfig{}, fmt.Errorf("%w: %s (want only the keys %s)", job.ErrInvalid,
			strings.TrimPrefix(err.Error(), "yaml: "), strings.Join(configKeys, ", "))
	}
	if c.Server != "" {
		if _, err := client.New(c.Server); err != nil {
			return userConfig{}, fmt.Errorf("server: %w", err)
		}
	}
	if c.Queue != "" {
		if err := job.ValidateQueueName(c.Queue); err != nil {
			return userConfig{}, fmt.Errorf("queue: %w", err)
		}
	}
	if strings.ContainsAny(c.Token, " \t\r\n") {
		return userConfig{}, fmt.Errorf("%w: token: want no whitespace", job.ErrInvalid)
	}
	return c, nil
}

// loadUserConfig reads the config file at path; a missing file is an
// empty config.
func loadUserConfig(path string) (userConfig, error) {
	if path == "" {
		return userConfig{}, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return userConfig{}, nil
	}
	if err != nil {
		return userConfig{}, fmt.Errorf("reading config file: %w", err)
	}
	c, err := parseUserConfig(b)
	if err != nil {
		return c, fmt.Errorf("config file %s: %w", path, err)
	}
	return c, nil
}

// applyUserConfig fills, from the config file, what neither a flag nor an
// environment variable gave: the server, the token, and launch's queue.
func (a *app) applyUserConfig(cmd *cobra.Command) error {
	if cmd.Annotations["skip-user-config"] == "true" {
		return nil // `slipway config` reports a broken file rather than fail on it
	}
	c, err := loadUserConfig(configPath())
	if err != nil {
		return fmt.Errorf("%w: %v (fix it, or see `slipway config --help`)", errUsage, err)
	}
	if f := cmd.Flags().Lookup("server"); f != nil && !f.Changed && os.Getenv("SLIPWAY_SERVER") == "" && c.Server != "" {
		a.server = c.Server
	}
	if f := cmd.Flags().Lookup("tls-ca"); f != nil && !f.Changed && os.Getenv("SLIPWAY_TLS_CA") == "" && c.TLSCA != "" {
		a.tlsCA = c.TLSCA
	}
	a.token = envOr("SLIPWAY_TOKEN", c.Token)
	if a.tokenFlag != "" {
		a.token = a.tokenFlag
	}
	if cmd.Name() == "launch" && c.Queue != "" {
		if f := cmd.Flags().Lookup("queue"); f != nil && !f.Changed {
			if err := cmd.Flags().Set("queue", c.Queue); err != nil {
				return fmt.Errorf("%w: default queue %q: %v", errUsage, c.Queue, err)
			}
		}
	}
	return nil
}

func (a *app) configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show where the client config file is and what it sets",
		Long: `The client reads its defaults from a YAML file:

  $SLIPWAY_CONFIG, else $XDG_CONFIG_HOME/slipway/config.yaml, else ~/.config/slipway/config.yaml

  server: https://slipway.example.com   # the server URL, like --server / SLIPWAY_SERVER
  token: s3cr3t                        # the API token, like SLIPWAY_TOKEN
  queue: sagemaker-queue               # the queue launch uses when -q is not given
  tls_ca: /etc/slipway/ca.pem          # the CA of an https server, like --tls-ca / SLIPWAY_TLS_CA

A flag wins over an environment variable, which wins over the file. A missing
file is fine; an unknown key is an error that names it.`,
		Example: `  slipway config                         # the file, and each value with where it came from
  slipway config set server http://10.0.0.5:7070
  slipway config set queue sagemaker-queue
  slipway config path`,
		Annotations: map[string]string{"skip-user-config": "true"},
		Args:        cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := configPath()
			c, err := loadUserConfig(path)
			if err != nil {
				return err
			}
			type source struct{ Value, From string }
			pick := func(flag, env, file, def string) source {
				if f := cmd.Flags().Lookup(flag); flag != "" && f != nil && f.Changed {
					return source{f.Value.String(), "--" + flag}
				}
				if v := os.Getenv(env); v != "" {
					return source{v, env}
				}
				if file != "" {
					return source{file, "config file"}
				}
				return source{def, "default"}
			}
			vals := map[string]source{
				"server": pick("server", "SLIPWAY_SERVER", c.Server, client.DefaultServer),
				"token":  pick("", "SLIPWAY_TOKEN", c.Token, ""),
				"queue":  pick("", "", c.Queue, ""),
				"tls_ca": pick("tls-ca", "SLIPWAY_TLS_CA", c.TLSCA, ""),
			}
			if t := vals["token"]; t.Value != "" {
				t.Value = "(set, " + fmt.Sprint(len(t.Value)) + " characters)"
				vals["token"] = t
			}
			if a.json() {
				return a.printJSON(map[string]any{"file": path, "values": vals})
			}
			exists := "does not exist"
			if st, err := os.Stat(path); err == nil {
				exists = "exists"
				if c.Token != "" && st.Mode().Perm()&0o077 != 0 {
					exists += fmt.Sprintf("; it holds a token and is readable by others (mode %v): chmod 600 it", st.Mode().Perm())
				}
			}
			fmt.Fprintf(a.stdout, "file: %s (%s)\n", path, exists)
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			for _, k := range configKeys {
				fmt.Fprintf(tw, "%s\t%s\t(%s)\n", k, vals[k].Value, vals[k].From)
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:         "path",
		Short:       "Print the config file's path",
		Example:     `  $EDITOR "$(slipway config path)"`,
		Annotations: map[string]string{"skip-user-config": "true"},
		Args:        cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(a.stdout, configPath())
			return nil
		},
	}, &cobra.Command{
		Use:   "set KEY VALUE",
		Short: "Set server, token, queue or tls_ca in the config file (created 0600 when missing)",
		Example: `  slipway config set server https://slipway.example.com
  slipway config set token "$(cat token.txt)"
  slipway config set queue ""      # unset`,
		Annotations: map[string]string{"skip-user-config": "true"},
		Args:        exactArgs(2, "KEY VALUE"),
		ValidArgs:   configKeys,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := configPath()
			if path == "" {
				return errors.New("no config file path: set SLIPWAY_CONFIG or HOME")
			}
			c, err := loadUserConfig(path)
			if err != nil {
				return err
			}
			switch args[0] {
			case "server":
				c.Server = args[1]
			case "token":
				c.Token = args[1]
			case "queue":
				c.Queue = args[1]
			case "tls_ca":
				c.TLSCA = args[1]
			default:
				return usageErr("config key %q: want one of %s", args[0], strings.Join(configKeys, ", "))
			}
			b, err := yaml.Marshal(c)
			if err != nil {
				return fmt.Errorf("encoding config: %w", err)
			}
			if _, err := parseUserConfig(b); err != nil {
				return usageErr("%s: %v", args[0], err)
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return fmt.Errorf("creating config folder: %w", err)
			}
			if err := writeFileAtomic(path, b, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s set in %s\n", args[0], path)
			return nil
		},
	})
	return cmd
}

// writeFileAtomic replaces path with b, so that a reader never sees half a file.
func writeFileAtomic(path string, b []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.yaml")
	if err != nil {
		return fmt.Errorf("writing config file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("writing config file: %w", err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("writing config file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing config file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing config file: %w", err)
	}
	return nil
}
