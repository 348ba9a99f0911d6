package catalog

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
	"github.com/ouroboros-cloud/ouro/client"
)

// maxPublicKeyFile bounds what keypair import reads.
const maxPublicKeyFile = 64 << 10

// NewKeyPairCommand returns the keypair command and its subcommands.
func NewKeyPairCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "keypair",
		Aliases: []string{"keypairs", "key"},
		Short:   "Manage SSH key pairs for instances",
		Long: "Key pairs hold SSH public keys. An instance created with --key NAME gets the key\n" +
			"installed by cloud-init and served by the metadata service. The private key never\n" +
			"reaches the server: `keypair create` makes the pair here and prints the private key once.",
	}
	cmd.AddCommand(
		newKeyPairCreateCommand(o),
		newKeyPairImportCommand(o),
		command.NewList(o, api.KeyPairKind, "List key pairs", keyPairTable),
		command.NewGet(o, api.KeyPairKind, "Show a key pair", keyPairTable),
		command.NewDelete(o, api.KeyPairKind, "Delete key pairs (instances keep the keys they were created with)"),
	)
	return cmd
}

func keyPairTable(items []*api.KeyPair) func(*output.Table) {
	return func(t *output.Table) {
		now := time.Now()
		t.Row("NAME", "TYPE", "FINGERPRINT", "AGE")
		for _, it := range items {
			t.Row(it.Metadata.Name, it.Status.Type, it.Status.Fingerprint, output.Age(it.Metadata.CreationTimestamp, now))
		}
	}
}

func newKeyPairCreateCommand(o *command.Options) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "create NAME [-f FILE]",
		Short: "Make a new ed25519 key pair and register its public key",
		Long: "Make a new ed25519 key pair on this machine, register its public key as NAME and print\n" +
			"the private key (OpenSSH format) once, or write it to FILE (mode 0600, never overwritten).\n" +
			"The server never sees the private key: keep it, it cannot be shown again.",
		Example: "  ouro keypair create laptop -f ~/.ssh/ouro-laptop\n" +
			"  ssh -i ~/.ssh/ouro-laptop root@<instance address>",
		Args: command.ExactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if e := api.ValidateName("metadata.name", name); e != nil {
				return command.ArgError("key pair name %q: %s (%s)", name, e.Message, e.Hint)
			}
			if file != "" {
				if _, err := os.Lstat(file); err == nil {
					return command.FlagError("file", "%s exists: remove it or give another file (private keys are never overwritten)", file)
				} else if !errors.Is(err, fs.ErrNotExist) {
					return command.FlagError("file", "%v", err)
				}
			}
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return fmt.Errorf("generate key: %w", err)
			}
			comment := name
			block, err := ssh.MarshalPrivateKey(priv, comment)
			if err != nil {
				return fmt.Errorf("encode private key: %w", err)
			}
			sshPub, err := ssh.NewPublicKey(pub)
			if err != nil {
				return fmt.Errorf("encode public key: %w", err)
			}
			privPEM := pem.EncodeToMemory(block)
			// Write the private key before registering: a key pair whose
			// private key was lost is worse than a file without a key pair.
			if file != "" {
				if err := writeNewFile(file, privPEM); err != nil {
					return err
				}
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			kp := newKeyPair(o.Project(), name, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))+" "+comment)
			if _, err := c.Create(cmd.Context(), kp, client.CreateOptions{IdempotencyKey: command.NewInvocationID()}); err != nil {
				if file != "" {
					os.Remove(file)
				}
				return err
			}
			out := cmd.OutOrStdout()
			if file == "" {
				// The private key is the output; details go to stderr.
				out.Write(privPEM)
				fmt.Fprintf(cmd.ErrOrStderr(), "keypair/%s created (%s); the private key above is shown only once\n", name, kp.Status.Fingerprint)
				return nil
			}
			if o.Output != "table" {
				return o.Render(out, kp, keyPairTable([]*api.KeyPair{kp}))
			}
			fmt.Fprintf(out, "keypair/%s created (%s); private key written to %s\n", name, kp.Status.Fingerprint, file)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "write the private key to this new file (mode 0600) instead of standard output")
	return cmd
}

func newKeyPairImportCommand(o *command.Options) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:     "import NAME --public-key FILE",
		Short:   "Register an existing SSH public key",
		Example: "  ouro keypair import laptop --public-key ~/.ssh/id_ed25519.pub",
		Args:    command.ExactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if e := api.ValidateName("metadata.name", name); e != nil {
				return command.ArgError("key pair name %q: %s (%s)", name, e.Message, e.Hint)
			}
			if file == "" {
				return command.FlagError("public-key", "required: give the public key file, e.g. ~/.ssh/id_ed25519.pub")
			}
			data, err := command.ReadInputFile(cmd, file, maxPublicKeyFile)
			if err != nil {
				return command.FlagError("public-key", "%v", err)
			}
			if strings.Contains(string(data), "PRIVATE KEY") {
				return command.FlagError("public-key", "%s holds a private key: give the .pub file", file)
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			kp := newKeyPair(o.Project(), name, strings.TrimSpace(string(data)))
			if _, err := c.Create(cmd.Context(), kp, client.CreateOptions{IdempotencyKey: command.NewInvocationID()}); err != nil {
				return err
			}
			return o.Render(cmd.OutOrStdout(), kp, keyPairTable([]*api.KeyPair{kp}))
		},
	}
	cmd.Flags().StringVar(&file, "public-key", "", "file holding one OpenSSH public key line (- for standard input)")
	return cmd
}

func newKeyPair(project, name, publicKey string) *api.KeyPair {
	return &api.KeyPair{
		Kind:     api.KeyPairKind.Name,
		Metadata: api.ObjectMeta{Name: name, Project: project},
		Spec:     api.KeyPairSpec{PublicKey: publicKey},
	}
}

// writeNewFile creates path with mode 0600 and data; it never replaces an
// existing file.
func writeNewFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write private key: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write private key: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("write private key: %w", err)
	}
	return nil
}
