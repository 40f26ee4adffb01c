"""What keeps a user's data and results safe whatever happens: values checked as
flags are, errors a user can fix shown as one line, files written atomically, downloads
verified, archives extracted safely, and stop signals deferred while a file is written."""
