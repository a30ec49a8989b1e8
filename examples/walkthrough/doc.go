// Package walkthrough has no code of its own. Its test runs the "Writing
// task modules" steps of the repository's README.md as a user would paste
// them, from go mod init in an empty directory to a host that runs a task.
package walkthrough
