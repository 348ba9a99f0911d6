package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
)

// NewCredentialsCommand returns the credentials command: access keys
// for the EC2-compatible API (docs/ec2.md).
func NewCredentialsCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "credentials",
		Aliases: []string{"credential", "accesskey", "accesskeys"},
		Short:   "Manage your access keys for the EC2-compatible API (AWS CLI, SDKs, Terraform)",
	}
	cmd.AddCommand(
		newCredentialsCreateCommand(o),
		command.NewList(o, api.AccessKeyKind, "List your access keys", accessKeyTable),
		newCredentialsDeleteCommand(o),
	)
	return cmd
}

func newCredentialsCreateCommand(o *command.Options) *cobra.Command {
	var description string
	cmd := &cobra.Command{
		Use:   "create [--project P]",
		Short: "Make an access key acting with your role in a project",
		Long: "Make an access key id and secret for the EC2-compatible API. The key acts with your role\n" +
			"in the project (the EC2 \"account\"). The secret is printed once and never again.",
		Example: "  ouro credentials create --project web\n" +
			"  aws configure set aws_access_key_id AKIA...; aws configure set aws_secret_access_key ...",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			var k api.AccessKey
			req := api.AccessKeyRequest{Project: o.Project(), Description: description}
			if _, err := c.Do(cmd.Context(), http.MethodPost, "/v1/accesskeys", nil, req, &k); err != nil {
				return err
			}
			if k.Status.Secret == "" {
				return errors.New("create access key: the server returned no secret")
			}
			if o.Output != "table" {
				return o.Render(cmd.OutOrStdout(), &k, nil)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Access key for user %s in project %s:\n\n", k.Spec.User, k.Spec.Project)
			fmt.Fprintf(w, "  aws_access_key_id     = %s\n  aws_secret_access_key = %s\n\n", k.Spec.AccessKeyID, k.Status.Secret)
			fmt.Fprintln(w, "Store the secret now: it is not shown again. Use the key with the AWS CLI:")
			fmt.Fprintln(w, "  aws --endpoint-url https://SERVER:PORT --ca-bundle ca.crt --region ouro-1 ec2 describe-instances")
			return nil
		},
	}
	cmd.Flags().StringVar(&description, "description", "", "what the key is for")
	return cmd
}

func newCredentialsDeleteCommand(o *command.Options) *cobra.Command {
	return &cobra.Command{
		Use:     "delete ACCESS_KEY_ID...",
		Aliases: []string{"rm"},
		Short:   "Delete access keys",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.Client()
			if err != nil {
				return err
			}
			for _, id := range args {
				if err := c.Delete(cmd.Context(), api.AccessKeyKind, "", strings.ToLower(id)); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "accesskey/%s deleted\n", strings.ToUpper(id))
			}
			return nil
		},
	}
}

func accessKeyTable(items []*api.AccessKey) func(*output.Table) {
	return func(t *output.Table) {
		now := time.Now()
		t.Row("ACCESS-KEY-ID", "USER", "PROJECT", "DESCRIPTION", "AGE")
		for _, k := range items {
			t.Row(k.Spec.AccessKeyID, k.Spec.User, k.Spec.Project, k.Spec.Description, output.Age(k.Metadata.CreationTimestamp, now))
		}
	}
}
