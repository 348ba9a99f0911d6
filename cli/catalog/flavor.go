package catalog

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
	"github.com/ouroboros-cloud/ouro/client"
)

// NewFlavorCommand returns the flavor command and its subcommands.
func NewFlavorCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "flavor",
		Aliases: []string{"flavors"},
		Short:   "Manage flavors (instance sizes)",
	}
	cmd.AddCommand(
		newFlavorCreateCommand(o),
		command.NewList(o, api.FlavorKind, "List flavors", flavorTable),
		command.NewGet(o, api.FlavorKind, "Show a flavor", flavorTable),
		command.NewDelete(o, api.FlavorKind, "Delete flavors"),
	)
	return cmd
}

func flavorTable(items []*api.Flavor) func(*output.Table) {
	return func(t *output.Table) {
		now := time.Now()
		t.Row("NAME", "VCPUS", "MEMORY", "DISK", "AGE")
		for _, it := range items {
			t.Row(it.Metadata.Name, strconv.Itoa(it.Spec.VCPUs), fmt.Sprintf("%d MiB", it.Spec.MemoryMiB),
				fmt.Sprintf("%d GiB", it.Spec.DiskGiB), output.Age(it.Metadata.CreationTimestamp, now))
		}
	}
}

func newFlavorCreateCommand(o *command.Options) *cobra.Command {
	var res api.Resources
	cmd := &cobra.Command{
		Use:     "create NAME --vcpus N --memory MiB --disk GiB",
		Short:   "Create a flavor (cluster admins)",
		Example: "  ouro flavor create small --vcpus 1 --memory 512 --disk 5",
		Args:    command.ExactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case res.VCPUs <= 0:
				return command.FlagError("vcpus", "%d is not positive: give the number of virtual CPUs, e.g. --vcpus 2", res.VCPUs)
			case res.MemoryMiB <= 0:
				return command.FlagError("memory", "%d is not positive: give the memory in MiB, e.g. --memory 1024", res.MemoryMiB)
			case res.DiskGiB < 0:
				return command.FlagError("disk", "%d is negative: give the disk size in GiB, e.g. --disk 10", res.DiskGiB)
			}
			if e := api.ValidateName("metadata.name", args[0]); e != nil {
				return command.ArgError("flavor name %q: %s (%s)", args[0], e.Message, e.Hint)
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			f := &api.Flavor{Kind: api.FlavorKind.Name, Metadata: api.ObjectMeta{Name: args[0]}, Spec: res}
			if _, err := c.Create(cmd.Context(), f, client.CreateOptions{IdempotencyKey: command.NewInvocationID()}); err != nil {
				return err
			}
			return o.Render(cmd.OutOrStdout(), f, flavorTable([]*api.Flavor{f}))
		},
	}
	cmd.Flags().IntVar(&res.VCPUs, "vcpus", 0, "virtual CPUs (required)")
	cmd.Flags().Int64Var(&res.MemoryMiB, "memory", 0, "memory in MiB (required)")
	cmd.Flags().Int64Var(&res.DiskGiB, "disk", 0, "disk in GiB")
	return cmd
}
