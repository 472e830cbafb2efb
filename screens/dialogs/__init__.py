"""The modal questions: confirm a plan or a rollback, an error, an SSH host key or passphrase, a file."""
