package volume

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
	"github.com/ouroboros-cloud/ouro/client"
)

// NewPoolCommand returns the pool command (storage pools, admin only).
func NewPoolCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "pool",
		Aliases: []string{"pools", "storagepool", "storagepools"},
		Short:   "Manage storage pools (where volumes live; admins)",
		Long: "A local pool keeps each volume as a file on one host's disk (instances using it run there);\n" +
			"a ceph pool keeps RBD images in a pool of an existing Ceph cluster, reachable from any host.",
	}
	var capacity int64
	local := &cobra.Command{
		Use:               "local NAME [--capacity GiB]",
		Short:             "Create a local pool",
		Args:              command.ExactArgs("NAME"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			return createPool(cmd, o, &api.StoragePool{Metadata: api.ObjectMeta{Name: args[0]},
				Spec: api.StoragePoolSpec{Type: api.PoolLocal, CapacityGiB: capacity}})
		},
	}
	local.Flags().Int64Var(&capacity, "capacity", 0, "largest volume in GiB (default 1024)")
	var monitors []string
	var cephPool, user, keyring string
	ceph := &cobra.Command{
		Use:               "ceph NAME --monitors M1,M2 --pool RBDPOOL --keyring FILE [--user U]",
		Short:             "Create a ceph pool",
		Args:              command.ExactArgs("NAME"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyring == "" {
				return command.FlagError("keyring", "required: the keyring file of the Ceph user")
			}
			b, err := command.ReadInputFile(cmd, keyring, 64<<10)
			if err != nil {
				return err
			}
			key := KeyringKey(b)
			if key == "" {
				return command.FlagError("keyring", "%s has no key = line", keyring)
			}
			return createPool(cmd, o, &api.StoragePool{Metadata: api.ObjectMeta{Name: args[0]},
				Spec: api.StoragePoolSpec{Type: api.PoolCeph, CapacityGiB: capacity,
					Ceph: &api.CephPool{Monitors: monitors, Pool: cephPool, User: user, Key: key}}})
		},
	}
	fl := ceph.Flags()
	fl.StringSliceVar(&monitors, "monitors", nil, "monitor addresses, host[:port], comma-separated (required)")
	fl.StringVar(&cephPool, "pool", "", "the RADOS pool of the RBD images (required)")
	fl.StringVar(&user, "user", "", "the cephx user without client. (default admin)")
	fl.StringVar(&keyring, "keyring", "", "the user's keyring file (- for standard input; required)")
	fl.Int64Var(&capacity, "capacity", 0, "largest volume in GiB (default 1024)")
	create := &cobra.Command{Use: "create", Short: "Create a storage pool"}
	create.AddCommand(local, ceph)
	cmd.AddCommand(create,
		command.NewList(o, api.StoragePoolKind, "List storage pools", poolTable),
		command.NewGet(o, api.StoragePoolKind, "Show a storage pool", poolTable),
		command.NewDelete(o, api.StoragePoolKind, "Delete storage pools (refused while volumes live there)"),
	)
	return cmd
}

func createPool(cmd *cobra.Command, o *command.Options, p *api.StoragePool) error {
	c, err := o.Client()
	if err != nil {
		return err
	}
	p.Kind = api.StoragePoolKind.Name
	if _, err := c.Create(cmd.Context(), p, client.CreateOptions{IdempotencyKey: command.NewInvocationID()}); err != nil {
		return err
	}
	if p.Spec.Ceph != nil {
		p.Spec.Ceph.Key = ""
	}
	return o.Render(cmd.OutOrStdout(), p, poolTable([]*api.StoragePool{p}))
}

// KeyringKey returns the key of the first "key = ..." line of a Ceph
// keyring, or "".
func KeyringKey(b []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok && strings.TrimSpace(k) == "key" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func poolTable(items []*api.StoragePool) func(*output.Table) {
	return func(t *output.Table) {
		now := time.Now()
		t.Row("NAME", "TYPE", "CAPACITY", "CEPH-POOL", "MONITORS", "AGE")
		for _, p := range items {
			var pool, mons string
			if c := p.Spec.Ceph; c != nil {
				pool, mons = c.Pool, strings.Join(c.Monitors, ",")
			}
			t.Row(p.Metadata.Name, p.Spec.Type, strconv.FormatInt(p.Spec.Capacity()>>30, 10)+"G", pool, mons,
				output.Age(p.Metadata.CreationTimestamp, now))
		}
	}
}
