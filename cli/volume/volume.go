// Package volume is the `ouro volume`, `ouro snapshot` and `ouro pool`
// families of commands: block volumes that outlive instances, their
// snapshots, and the storage pools they live in.
package volume

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
	"github.com/ouroboros-cloud/ouro/client"
)

// NewCommand returns the volume command and its subcommands.
func NewCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "volume",
		Aliases: []string{"volumes", "vol"},
		Short:   "Manage volumes (block storage that outlives instances)",
		Long: "A volume is a disk of a project in a storage pool, attached to one instance at a time:\n" +
			"a VM sees it as a virtio disk whose serial is the volume's id (/dev/disk/by-id/virtio-ID),\n" +
			"a container as a filesystem mounted at a path. Deleting an instance detaches its volumes.",
	}
	cmd.AddCommand(
		newCreateCommand(o),
		command.NewList(o, api.VolumeKind, "List volumes", volumeTable),
		command.NewGet(o, api.VolumeKind, "Show a volume", volumeTable),
		newAttachCommand(o),
		newDetachCommand(o),
		newResizeCommand(o),
		command.NewDelete(o, api.VolumeKind, "Delete volumes (refused while attached or snapshotted)"),
	)
	return cmd
}

func volumeTable(items []*api.Volume) func(*output.Table) {
	return func(t *output.Table) {
		now := time.Now()
		t.Row("NAME", "SIZE", "POOL", "HOST", "STATE", "ATTACHED-TO", "ID", "AGE")
		for _, v := range items {
			state := v.Status.State
			if state == "" {
				state = api.VolumeCreating
			}
			t.Row(v.Metadata.Name, FormatSize(v.Spec.SizeBytes), v.Spec.Pool, v.Spec.Host, state,
				v.Status.AttachedTo, v.Status.ID, output.Age(v.Metadata.CreationTimestamp, now))
		}
	}
}

func newCreateCommand(o *command.Options) *cobra.Command {
	var size, pool, fromSnap, fromImage, host string
	cmd := &cobra.Command{
		Use:   "create NAME --size SIZE --pool POOL [--from-snapshot S | --from-image I]",
		Short: "Create a volume",
		Example: "  ouro volume create data --size 10G --pool local\n" +
			"  ouro volume create restored --size 10G --pool local --from-snapshot nightly",
		Args:              command.ExactArgs("NAME"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			if e := api.ValidateName("metadata.name", args[0]); e != nil {
				return command.ArgError("volume name %q: %s (%s)", args[0], e.Message, e.Hint)
			}
			if size == "" {
				return command.FlagError("size", "required: give the size, e.g. --size 10G")
			}
			n, err := ParseSize(size)
			if err != nil {
				return command.FlagError("size", "%v", err)
			}
			if pool == "" {
				return command.FlagError("pool", "required: name a storage pool (see `ouro pool list`)")
			}
			if fromSnap != "" && fromImage != "" {
				return command.FlagError("from-image", "give --from-snapshot or --from-image, not both")
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			v := &api.Volume{Kind: api.VolumeKind.Name, Metadata: api.ObjectMeta{Name: args[0], Project: o.Project()},
				Spec: api.VolumeSpec{SizeBytes: n, Pool: pool, FromSnapshot: fromSnap, FromImage: fromImage, Host: host}}
			if _, err := c.Create(cmd.Context(), v, client.CreateOptions{IdempotencyKey: command.NewInvocationID()}); err != nil {
				return err
			}
			return o.Render(cmd.OutOrStdout(), v, volumeTable([]*api.Volume{v}))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&size, "size", "", "size, e.g. 10G (binary units; required)")
	fl.StringVar(&pool, "pool", "", "storage pool (required)")
	fl.StringVar(&fromSnap, "from-snapshot", "", "start as a copy of this snapshot of the project")
	fl.StringVar(&fromImage, "from-image", "", "start with the content of this image")
	fl.StringVar(&host, "host", "", "for a local pool, the host the volume lives on (default: chosen)")
	cmd.RegisterFlagCompletionFunc("pool", o.CompleteNames(api.StoragePoolKind, true))
	cmd.RegisterFlagCompletionFunc("from-snapshot", o.CompleteNames(api.VolumeSnapshotKind, true))
	cmd.RegisterFlagCompletionFunc("from-image", o.CompleteNames(api.ImageKind, true))
	cmd.RegisterFlagCompletionFunc("host", o.CompleteNames(api.HostKind, true))
	return cmd
}

func newAttachCommand(o *command.Options) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "attach VOLUME INSTANCE [--path /data]",
		Short: "Attach a volume to an instance (hot-plugged into a running VM)",
		Long: "Attach a volume to an instance of the project. It is refused while another instance holds\n" +
			"the volume. A container mounts it at --path (formatted ext4 on first use).",
		Args:              command.ExactArgs("VOLUME", "INSTANCE"),
		ValidArgsFunction: o.CompleteArgs(api.VolumeKind, api.InstanceKind),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			in, err := c.AttachVolume(cmd.Context(), o.Project(), args[1], api.InstanceVolume{Name: args[0], Path: path})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "volume/%s attached to instance/%s\n", args[0], in.Metadata.Name)
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "path", "", "where a container sees the volume's filesystem")
	return cmd
}

func newDetachCommand(o *command.Options) *cobra.Command {
	var instance string
	cmd := &cobra.Command{
		Use:               "detach VOLUME [--instance I]",
		Short:             "Detach a volume from the instance using it",
		Args:              command.ExactArgs("VOLUME"),
		ValidArgsFunction: o.CompleteNames(api.VolumeKind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			in, err := c.DetachVolume(cmd.Context(), o.Project(), args[0], instance)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "volume/%s detached from instance/%s\n", args[0], in.Metadata.Name)
			return nil
		},
	}
	cmd.Flags().StringVar(&instance, "instance", "", "the instance (default: the one using the volume)")
	cmd.RegisterFlagCompletionFunc("instance", o.CompleteNames(api.InstanceKind, true))
	return cmd
}

func newResizeCommand(o *command.Options) *cobra.Command {
	var size string
	cmd := &cobra.Command{
		Use:               "resize VOLUME --size SIZE",
		Short:             "Grow a volume (never shrinks)",
		Args:              command.ExactArgs("VOLUME"),
		ValidArgsFunction: o.CompleteNames(api.VolumeKind, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := ParseSize(size)
			if err != nil {
				return command.FlagError("size", "%v", err)
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			v, err := c.ResizeVolume(cmd.Context(), o.Project(), args[0], n)
			if err != nil {
				return err
			}
			return o.Render(cmd.OutOrStdout(), v, volumeTable([]*api.Volume{v}))
		},
	}
	cmd.Flags().StringVar(&size, "size", "", "the new size, e.g. 20G (required)")
	return cmd
}

// NewSnapshotCommand returns the snapshot command and its subcommands.
func NewSnapshotCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "snapshot",
		Aliases: []string{"snapshots", "snap"},
		Short:   "Manage volume snapshots (point-in-time copies)",
	}
	create := &cobra.Command{
		Use:               "create NAME --volume VOLUME",
		Short:             "Snapshot a volume",
		Args:              command.ExactArgs("NAME"),
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	var vol string
	create.Flags().StringVar(&vol, "volume", "", "the volume to copy (required)")
	create.RegisterFlagCompletionFunc("volume", o.CompleteNames(api.VolumeKind, true))
	create.RunE = func(cmd *cobra.Command, args []string) error {
		if vol == "" {
			return command.FlagError("volume", "required: name the volume to snapshot")
		}
		c, err := o.Client()
		if err != nil {
			return err
		}
		s := &api.VolumeSnapshot{Kind: api.VolumeSnapshotKind.Name, Metadata: api.ObjectMeta{Name: args[0], Project: o.Project()},
			Spec: api.VolumeSnapshotSpec{Volume: vol}}
		if _, err := c.Create(cmd.Context(), s, client.CreateOptions{IdempotencyKey: command.NewInvocationID()}); err != nil {
			return err
		}
		return o.Render(cmd.OutOrStdout(), s, snapshotTable([]*api.VolumeSnapshot{s}))
	}
	cmd.AddCommand(create,
		command.NewList(o, api.VolumeSnapshotKind, "List snapshots", snapshotTable),
		command.NewGet(o, api.VolumeSnapshotKind, "Show a snapshot", snapshotTable),
		command.NewDelete(o, api.VolumeSnapshotKind, "Delete snapshots"),
	)
	return cmd
}

func snapshotTable(items []*api.VolumeSnapshot) func(*output.Table) {
	return func(t *output.Table) {
		now := time.Now()
		t.Row("NAME", "VOLUME", "SIZE", "POOL", "STATE", "AGE")
		for _, s := range items {
			t.Row(s.Metadata.Name, s.Spec.Volume, FormatSize(s.Status.SizeBytes), s.Status.Pool, s.Status.State,
				output.Age(s.Metadata.CreationTimestamp, now))
		}
	}
}
