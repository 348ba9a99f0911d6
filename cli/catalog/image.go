// Package catalog holds the ouro commands of what instances are made
// from: images (imported and uploaded), flavors (sizes) and SSH key pairs.
package catalog

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
	"github.com/ouroboros-cloud/ouro/imageimport"
)

// NewImageCommand returns the image command and its subcommands.
func NewImageCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "image",
		Aliases: []string{"images"},
		Short:   "Manage images",
	}
	cmd.AddCommand(
		newImageImportCommand(o),
		command.NewList(o, api.ImageKind, "List images", imageTable),
		command.NewGet(o, api.ImageKind, "Show an image", imageTable),
		command.NewDelete(o, api.ImageKind, "Delete images"),
	)
	return cmd
}

func imageTable(items []*api.Image) func(*output.Table) {
	return func(t *output.Table) {
		now := time.Now()
		t.Row("NAME", "FORMAT", "ARCH", "SIZE", "PUBLIC", "PHASE", "AGE", "SOURCE")
		for _, it := range items {
			public := "no"
			if it.Spec.Public {
				public = "yes"
			}
			t.Row(it.Metadata.Name, it.Spec.Format, it.Spec.Architecture, output.Bytes(it.Status.Size), public,
				it.Status.Phase, output.Age(it.Metadata.CreationTimestamp, now), it.Spec.Source)
		}
	}
}

func newImageImportCommand(o *command.Options) *cobra.Command {
	var public bool
	var description string
	var vm imageimport.Options
	cmd := &cobra.Command{
		Use:   "import NAME [SOURCE]",
		Short: "Import a container or virtual machine image and upload it",
		Long: "Import an image and upload it as image NAME. SOURCE is one of:\n" +
			"  - a container image: an OCI layout directory or archive, a `docker save` tar, a root\n" +
			"    filesystem tarball or a registry reference;\n" +
			"  - a virtual machine disk: a qcow2 file (detected by its header), or a raw disk (named\n" +
			"    *.img or *.raw, or any file with --format raw);\n" +
			"  - an http(s) URL of any of those files, downloaded first (use --sha256 to verify it).\n" +
			"With --kernel (and optionally --initrd, --cmdline) a disk boots that kernel directly;\n" +
			"without SOURCE, --kernel makes an image that is only a kernel and initrd.",
		Example: "  ouro image import alpine docker.io/library/alpine:3.20\n" +
			"  ouro image import app ./app.tar --description 'our app'\n" +
			"  ouro image import debian https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2 --sha256 HEX\n" +
			"  ouro image import disk ./root.img --kernel /boot/vmlinuz --initrd /boot/initrd.img --cmdline 'root=/dev/vda rw console=ttyS0'\n" +
			"  ouro image import tiny --kernel ./bzImage --initrd ./initramfs.cpio.gz --cmdline console=ttyS0",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return command.ArgError("%s wants NAME [SOURCE], got %d argument(s)", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			name, source := args[0], ""
			if len(args) > 1 {
				source = args[1]
			}
			if e := api.ValidateName("metadata.name", name); e != nil {
				return command.ArgError("image name %q: %s (%s)", name, e.Message, e.Hint)
			}
			if source == "" && vm.Kernel == "" {
				return command.ArgError("%s wants a SOURCE, or --kernel for an image that boots a kernel directly", cmd.CommandPath())
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			// Interrupting an import still removes its temporary files.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			errw := cmd.ErrOrStderr()
			tty := output.IsTerminal(errw)

			work, err := os.MkdirTemp("", "ouro-import-")
			if err != nil {
				return fmt.Errorf("import %s: %w", name, err)
			}
			defer os.RemoveAll(work)

			if source != "" {
				fmt.Fprintf(errw, "Reading %s\n", source)
			}
			steps := &stepBars{w: errw, tty: tty}
			vm.Progress = steps.update
			img, err := imageimport.LoadSource(ctx, source, work, vm)
			steps.finish()
			if err != nil {
				return err
			}
			bar := output.NewProgressBar(errw, tty, "Uploading "+name, nil)
			out, err := imageimport.Upload(ctx, c, o.Project(), name, img, imageimport.UploadOptions{
				Public:      public,
				Description: description,
				Progress:    bar.Update,
			})
			bar.Finish()
			if err != nil {
				return err
			}
			if o.Output != "table" {
				return o.Render(cmd.OutOrStdout(), out, nil)
			}
			if out.Spec.Format == api.FormatOCI {
				fmt.Fprintf(cmd.OutOrStdout(), "image/%s imported (%s, %d layer(s))\n", out.Metadata.Name,
					output.Bytes(out.Status.Size), len(out.Spec.Layers))
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "image/%s imported (%s, %s)\n", out.Metadata.Name, out.Spec.Format, output.Bytes(out.Status.Size))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&public, "public", false, "let every project use the image (cluster admins)")
	f.StringVar(&description, "description", "", "what the image is")
	f.StringVar(&vm.Format, "format", "", "qcow2, raw or oci (default: detect; a raw disk needs this unless named *.img or *.raw)")
	f.StringVar(&vm.SHA256, "sha256", "", "expected SHA-256 of the SOURCE file or download, in hex")
	f.StringVar(&vm.Kernel, "kernel", "", "kernel file to boot the virtual machine with (bzImage, arm64 Image, vmlinux)")
	f.StringVar(&vm.Initrd, "initrd", "", "initramfs file for --kernel")
	f.StringVar(&vm.Cmdline, "cmdline", "", "kernel command line for --kernel")
	f.StringVar(&vm.Architecture, "arch", "", "architecture the image is built for, e.g. amd64 (default: detected from the kernel or container image, else any)")
	return cmd
}

// stepBars shows one progress bar per step of loading an image
// (downloading, reading), starting a new line when the step changes.
type stepBars struct {
	w    io.Writer
	tty  bool
	step string
	bar  *output.ProgressBar
}

func (s *stepBars) update(step string, done, total int64) {
	if step != s.step {
		s.finish()
		s.step, s.bar = step, output.NewProgressBar(s.w, s.tty, step, nil)
	}
	s.bar.Update(done, total)
}

func (s *stepBars) finish() {
	if s.bar != nil {
		s.bar.Finish()
		s.bar, s.step = nil, ""
	}
}
