package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/imageimport"
)

func newImageCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "image",
		Aliases: []string{"images"},
		Short:   "Manage images",
	}
	cmd.AddCommand(
		newImageImportCommand(o),
		newListCommand(o, api.ImageKind, "List images", imageTable),
		newGetCommand(o, api.ImageKind, "Show an image", imageTable),
		newDeleteCommand(o, api.ImageKind, "Delete images"),
	)
	return cmd
}

func imageTable(items []*api.Image) func(*table) {
	return func(t *table) {
		now := time.Now()
		t.row("NAME", "FORMAT", "ARCH", "SIZE", "PUBLIC", "PHASE", "AGE", "SOURCE")
		for _, it := range items {
			public := "no"
			if it.Spec.Public {
				public = "yes"
			}
			t.row(it.Metadata.Name, it.Spec.Format, it.Spec.Architecture, bytesString(it.Status.Size), public,
				it.Status.Phase, age(it.Metadata.CreationTimestamp, now), it.Spec.Source)
		}
	}
}

func newImageImportCommand(o *options) *cobra.Command {
	var public bool
	var description string
	cmd := &cobra.Command{
		Use:   "import NAME SOURCE",
		Short: "Import a container image and upload it",
		Long: "Import a container image from an OCI layout directory or archive, a `docker save` tar,\n" +
			"a root filesystem tarball or a registry reference, and upload it as image NAME.",
		Example: "  ouro image import alpine docker.io/library/alpine:3.20\n" +
			"  ouro image import app ./app.tar --description 'our app'",
		Args: exactArgs("NAME", "SOURCE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, source := args[0], args[1]
			if e := api.ValidateName("metadata.name", name); e != nil {
				return argError("image name %q: %s (%s)", name, e.Message, e.Hint)
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			errw := cmd.ErrOrStderr()
			tty := isTerminal(errw)

			work, err := os.MkdirTemp("", "ouro-import-")
			if err != nil {
				return fmt.Errorf("import %s: %w", name, err)
			}
			defer os.RemoveAll(work)

			fmt.Fprintf(errw, "Reading %s\n", source)
			img, err := imageimport.Load(ctx, source, work)
			if err != nil {
				return err
			}
			bar := newProgressBar(errw, tty, "Uploading "+name, nil)
			out, err := imageimport.Upload(ctx, c, o.projectName(), name, img, imageimport.UploadOptions{
				Public:      public,
				Description: description,
				Progress:    bar.update,
			})
			bar.finish()
			if err != nil {
				return err
			}
			if o.output != "table" {
				return o.render(cmd.OutOrStdout(), out, nil)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "image/%s imported (%s, %d layer(s))\n", out.Metadata.Name,
				bytesString(out.Status.Size), len(out.Spec.Layers))
			return nil
		},
	}
	cmd.Flags().BoolVar(&public, "public", false, "let every project use the image (cluster admins)")
	cmd.Flags().StringVar(&description, "description", "", "what the image is")
	return cmd
}
