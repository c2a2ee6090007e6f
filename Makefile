# agentorch -- PGXS build.
#
#   make && make install       build and install into the PostgreSQL found by pg_config
#   make unit                  build the PostgreSQL-free core's unit tests (plain + sanitized)
#   scripts/test.sh            everything the CI runs (see README)

EXTENSION   = agentorch
EXTVERSION  = 0.2.0
MODULE_big  = agentorch
# One folder per layer (src/README.md); src/bin holds programs, not module code.
LAYERS      = api coordinator selector orchestration runner state stream policy io shmem common core core/llm worker
OBJS        = $(patsubst %.c,%.o,$(wildcard src/*.c $(addprefix src/,$(addsuffix /*.c,$(LAYERS)))))
# The current version's install script is generated (below); released
# versions' scripts are frozen, committed files (sql/agentorch--0.1.0.sql),
# installed with every upgrade script sql/agentorch--A--B.sql, so older
# versions stay installable and ALTER EXTENSION ... UPDATE finds its path.
# Releasing X and starting Y: commit the generated sql/agentorch--X.sql,
# set EXTVERSION and agentorch.control's default_version to Y, move the
# .gitignore line to Y's script, add sql/agentorch--X--Y.sql (every SQL
# change from then on goes there too; see the header of the current one).
DATA_built  = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA        = $(filter-out $(DATA_built),$(wildcard sql/$(EXTENSION)--*.sql))
EXTRA_CLEAN = sql/$(EXTENSION)--$(EXTVERSION).sql build tmp_check_regress tmp_check_isolation output_iso

PKGS        = libcurl json-c yaml-0.1 libpcre2-8
PG_CPPFLAGS = -Isrc $(addprefix -Isrc/,$(LAYERS)) $(shell pkg-config --cflags $(PKGS))
SHLIB_LINK  = $(shell pkg-config --libs $(PKGS))
PG_CFLAGS   = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare $(AO_CFLAGS)

# Tests under PGXS: `make installcheck` (as a non-root user: initdb refuses
# root; scripts/test.sh runs every suite as the postgres user) runs
# pg_regress, pg_isolation_regress and the TAP tests, each on throwaway
# clusters with agentorch preloaded (--temp-instance), not on a running
# server: the extension needs shared_preload_libraries.
REGRESS        = $(shell grep -vE '^[[:space:]]*(\#|$$)' test/regress_schedule)
REGRESS_OPTS   = --temp-instance=tmp_check_regress --temp-config=test/agentorch-test.conf
ISOLATION      = $(basename $(notdir $(wildcard test/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test/isolation --temp-instance=tmp_check_isolation \
                 --temp-config=test/agentorch-isolation.conf --load-extension=agentorch
TAP_TESTS      = 1
PROVE_TESTS    = test/t/*.pl

PG_CONFIG  ?= pg_config
PGXS       := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Objects are rebuilt when AO_CFLAGS change: scripts/test.sh builds with
# assertions (-DUSE_ASSERT_CHECKING), demo.sh and the benchmarks without.
build/cflags.stamp: FORCE
	@mkdir -p build; echo '$(AO_CFLAGS)' | cmp -s - $@ || echo '$(AO_CFLAGS)' > $@
$(OBJS): build/cflags.stamp
.PHONY: FORCE
FORCE:

PROVE_FLAGS += -I test/t

# The install script: the editable sources (data model, state layer, run
# API) plus the JSON Schema documents of
# schemas/, so the validators read exactly the files in the repository.
INSTALL_SOURCES = sql/$(EXTENSION).sql sql/$(EXTENSION)_state.sql sql/$(EXTENSION)_api.sql \
                  sql/$(EXTENSION)_workers.sql
sql/$(EXTENSION)--$(EXTVERSION).sql: $(INSTALL_SOURCES) $(wildcard schemas/*.schema.json) scripts/gen_schemas_sql.sh
	{ cat $(INSTALL_SOURCES); sh scripts/gen_schemas_sql.sh schemas/*.schema.json; } > $@

unit:
	$(MAKE) -C test/unit
	$(MAKE) -C test/unit SANITIZE=1

.PHONY: unit

# agentorch-follow: a libpq client that prints a run's stream live.
FOLLOW = build/agentorch-follow
all: $(FOLLOW)
$(FOLLOW): src/bin/agentorch-follow.c
	@mkdir -p build
	$(CC) -O2 -Wall -Wextra -I$(shell $(PG_CONFIG) --includedir) -o $@ $< \
		-L$(shell $(PG_CONFIG) --libdir) -lpq
install: install-follow
install-follow: $(FOLLOW)
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) $(FOLLOW) '$(DESTDIR)$(bindir)/agentorch-follow'
	@# PostgreSQL's bindir is not on PATH on Debian: link the program into /usr/local/bin
	@if [ -z '$(DESTDIR)' ] && [ -d /usr/local/bin ] && [ -w /usr/local/bin ]; then \
		ln -sf '$(bindir)/agentorch-follow' /usr/local/bin/agentorch-follow; fi
.PHONY: install-follow

# agentorch-worker: an external worker (libpq + libcurl multi) that claims
# network steps; it links the PostgreSQL-free core, compiled for the program.
WORKER      = build/agentorch-worker
WORKER_CORE = $(wildcard src/core/*.c src/core/llm/*.c)
all: $(WORKER)
$(WORKER): src/bin/agentorch-worker.c $(WORKER_CORE) $(wildcard src/core/*.h src/core/llm/*.h)
	@mkdir -p build
	$(CC) -std=gnu99 -O2 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare \
		-Isrc/core -Isrc/core/llm -I$(shell $(PG_CONFIG) --includedir) $(shell pkg-config --cflags $(PKGS)) \
		-o $@ src/bin/agentorch-worker.c $(WORKER_CORE) \
		-L$(shell $(PG_CONFIG) --libdir) -lpq $(shell pkg-config --libs $(PKGS))
install: install-worker
install-worker: $(WORKER)
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) $(WORKER) '$(DESTDIR)$(bindir)/agentorch-worker'
	@if [ -z '$(DESTDIR)' ] && [ -d /usr/local/bin ] && [ -w /usr/local/bin ]; then \
		ln -sf '$(bindir)/agentorch-worker' /usr/local/bin/agentorch-worker; fi
.PHONY: install-worker
