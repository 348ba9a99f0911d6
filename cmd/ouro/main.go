// Command ouro is the whole Ouroboros cloud in one binary: the CLI, the API
// server, the host agent and the all-in-one "ouro up".
package main

import (
	"context"
	"os"

	"github.com/ouroboros-cloud/ouro/cli"
	"github.com/ouroboros-cloud/ouro/daemon"
)

func main() {
	root := cli.NewRootCommand()
	daemon.AddCommands(root)
	os.Exit(cli.Execute(context.Background(), root))
}
