package network

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
	"github.com/ouroboros-cloud/ouro/client"
)

// Bounds of a VPC's prefix length (see api.VPCSpec.CIDR).
const (
	minVPCBits = 16
	maxVPCBits = 28
)

// NewVPCCommand returns the vpc command and its subcommands.
func NewVPCCommand(o *command.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "vpc",
		Aliases: []string{"vpcs"},
		Short:   "Manage VPCs: prefixes whose networks (subnets) reach each other",
	}
	cmd.AddCommand(
		newVPCCreateCommand(o),
		command.NewList(o, api.VPCKind, "List VPCs", vpcTable),
		command.NewGet(o, api.VPCKind, "Show a VPC", vpcTable),
		command.NewDelete(o, api.VPCKind, "Delete VPCs (they must have no subnets)"),
	)
	return cmd
}

// vpcTable writes VPCs as NAME CIDR DEFAULT ROUTES AGE.
func vpcTable(items []*api.VPC) func(*output.Table) {
	return func(t *output.Table) {
		now := time.Now()
		t.Row("NAME", "CIDR", "DEFAULT", "ROUTES", "AGE")
		for _, v := range items {
			var routes []string
			for _, r := range v.Status.RouteTable.Routes {
				routes = append(routes, r.Destination+"→"+r.Target)
			}
			t.Row(v.Metadata.Name, v.Spec.CIDR, output.YesNo(v.Status.Default), strings.Join(routes, ","),
				output.Age(v.Metadata.CreationTimestamp, now))
		}
	}
}

func newVPCCreateCommand(o *command.Options) *cobra.Command {
	var cidr string
	cmd := &cobra.Command{
		Use:   "create NAME --cidr PREFIX",
		Short: "Create a VPC",
		Long: "Create a VPC. Networks created with --vpc NAME are its subnets: their prefixes lie\n" +
			"inside the VPC's and do not overlap, and their instances reach each other as their\n" +
			"security groups allow. Networks of other VPCs stay apart.",
		Example: "  ouro vpc create prod --cidr 10.0.0.0/16\n" +
			"  ouro network create web --vpc prod --cidr 10.0.1.0/24",
		Args: command.ExactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cidr == "" {
				return command.FlagError("cidr", "required: give the VPC's IPv4 prefix, e.g. --cidr 10.0.0.0/16")
			}
			p, err := parseIPv4Prefix("cidr", cidr)
			if err != nil {
				return err
			}
			if p.Bits() < minVPCBits || p.Bits() > maxVPCBits {
				return command.FlagError("cidr", "%s is a /%d: use a prefix from /%d to /%d", cidr, p.Bits(), minVPCBits, maxVPCBits)
			}
			if e := api.ValidateName("metadata.name", args[0]); e != nil {
				return command.ArgError("VPC name %q: %s (%s)", args[0], e.Message, e.Hint)
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			v := &api.VPC{Kind: api.VPCKind.Name,
				Metadata: api.ObjectMeta{Name: args[0], Project: o.Project()}, Spec: api.VPCSpec{CIDR: p.String()}}
			if _, err := c.Create(cmd.Context(), v, client.CreateOptions{IdempotencyKey: command.NewInvocationID()}); err != nil {
				return err
			}
			return o.Render(cmd.OutOrStdout(), v, vpcTable([]*api.VPC{v}))
		},
	}
	cmd.Flags().StringVar(&cidr, "cidr", "", fmt.Sprintf("IPv4 prefix of the VPC, /%d to /%d (required)", minVPCBits, maxVPCBits))
	return cmd
}
