// Package ec2 serves the EC2 Query API (version 2016-11-15) and STS
// (2011-06-15, GetCallerIdentity) over the objects of the REST API, so
// that the AWS CLI, the AWS SDKs and Terraform's AWS provider drive
// Ouroboros unchanged (docs/ec2.md).
//
// A request is a form-encoded POST signed with SigV4 (package sigv4)
// by an access key (api.AccessKey) that acts with its user's role in
// one project, the EC2 "account". Handler verifies it, decodes the form
// against the parameters the action declares (bounded: indexes, counts,
// sizes), runs the action and answers in AWS's XML shapes; errors carry
// AWS's codes, with a 4xx status for every client fault.
//
// Actions are registered per resource family, one file each
// (instances.go, securitygroups.go, …), by calling register from an
// init function. Every write goes through Objects, the API server's
// create, update and delete with its authorization and admission, so an
// object made through EC2 obeys exactly the rules of one made through
// REST. Reads list the caller's project from the store.
//
// Ids are AWS-shaped ("i-" and 17 hex digits, "sg-…", "ami-…") and
// derived from the object's UID (ID), so every server computes the same
// id without keeping any state; finding an object by id lists the
// project's objects of that kind (cost linear in their number).
package ec2
