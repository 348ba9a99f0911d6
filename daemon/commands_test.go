package daemon

import (
	"testing"

	"github.com/spf13/cobra"
)

func TestAddCommandsKeepsServerSubcommands(t *testing.T) {
	root := &cobra.Command{Use: "ouro"}
	cliServer := &cobra.Command{Use: "server"}
	cliServer.AddCommand(&cobra.Command{Use: "list", Run: func(*cobra.Command, []string) {}},
		&cobra.Command{Use: "join-token", Run: func(*cobra.Command, []string) {}})
	root.AddCommand(cliServer)
	AddCommands(root)

	var servers []*cobra.Command
	for _, c := range root.Commands() {
		if c.Name() == "server" {
			servers = append(servers, c)
		}
	}
	if len(servers) != 1 {
		t.Fatalf("%d server commands, want one", len(servers))
	}
	srv := servers[0]
	if srv.RunE == nil || srv.Flags().Lookup("api-vip") == nil || srv.Flags().Lookup("join") == nil {
		t.Fatal("the server command is not the daemon's")
	}
	for _, want := range []string{"list", "join-token"} {
		if c, _, err := root.Find([]string{"server", want}); err != nil || c.Name() != want {
			t.Errorf("ouro server %s: %v, %v", want, c, err)
		}
	}
	for _, want := range []string{"up", "agent"} {
		if c, _, err := root.Find([]string{want}); err != nil || c.Name() != want {
			t.Errorf("ouro %s: %v", want, err)
		}
	}
}
