# agentorch -- PGXS build.
#
#   make && make install       build and install into the PostgreSQL found by pg_config
#   make unit                  build the PostgreSQL-free core's unit tests (plain + sanitized)
#   scripts/test.sh            everything the CI runs (see README)
#
# Builds run in the source tree or out of it (VPATH, as Debian's pg_buildext
# does: make -C build-15 -f SRC/Makefile VPATH=SRC): sources are read from
# $(SRC), the directory of this Makefile; objects and generated files go to
# the current directory.

EXTENSION   = agentorch
EXTVERSION  = 0.2.0
MODULE_big  = agentorch
SRC        := $(patsubst %/,%,$(dir $(abspath $(firstword $(MAKEFILE_LIST)))))
# One folder per layer (src/README.md); src/bin holds programs, not module code.
LAYERS      = api coordinator selector orchestration runner state stream policy io shmem common core core/llm worker
SOURCES     = $(wildcard $(SRC)/src/*.c $(addprefix $(SRC)/src/,$(addsuffix /*.c,$(LAYERS))))
OBJS        = $(patsubst $(SRC)/%.c,%.o,$(SOURCES))
# The current version's install script is generated (below); released
# versions' scripts are frozen, committed files (sql/agentorch--0.1.0.sql),
# installed with every upgrade script sql/agentorch--A--B.sql, so older
# versions stay installable and ALTER EXTENSION ... UPDATE finds its path.
# Releasing X and starting Y: commit the generated sql/agentorch--X.sql,
# set EXTVERSION and agentorch.control's default_version to Y, move the
# .gitignore line to Y's script, add sql/agentorch--X--Y.sql (every SQL
# change from then on goes there too; see the header of the current one).
# Generated files are named by absolute path, so that an out-of-tree build
# never takes a stale copy from the source tree for its own (VPATH search).
AO_INSTALL_SQL = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA_built  = $(CURDIR)/$(AO_INSTALL_SQL)
DATA        = $(filter-out $(AO_INSTALL_SQL),$(patsubst $(SRC)/%,%,$(wildcard $(SRC)/sql/$(EXTENSION)--*.sql)))
EXTRA_CLEAN = $(AO_INSTALL_SQL) build tmp_check_regress tmp_check_isolation output_iso

PKGS        = libcurl json-c yaml-0.1 libpcre2-8 libcrypto
PG_CPPFLAGS = -I$(SRC)/src $(addprefix -I$(SRC)/src/,$(LAYERS)) $(shell pkg-config --cflags $(PKGS))
SHLIB_LINK  = $(shell pkg-config --libs $(PKGS))
PG_CFLAGS   = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare $(AO_CFLAGS)

# Tests under PGXS: `make installcheck` (as a non-root user: initdb refuses
# root; scripts/test.sh runs every suite as the postgres user) runs
# pg_regress, pg_isolation_regress and the TAP tests, each on throwaway
# clusters with agentorch preloaded (--temp-instance), not on a running
# server: the extension needs shared_preload_libraries.
REGRESS        = $(shell grep -vE '^[[:space:]]*(\#|$$)' $(SRC)/test/regress_schedule)
REGRESS_OPTS   = --temp-instance=tmp_check_regress --temp-config=$(SRC)/test/agentorch-test.conf
ISOLATION      = $(basename $(notdir $(wildcard $(SRC)/test/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=$(SRC)/test/isolation --temp-instance=tmp_check_isolation \
                 --temp-config=$(SRC)/test/agentorch-isolation.conf --load-extension=agentorch
TAP_TESTS      = 1
PROVE_TESTS    = test/t/*.pl

PG_CONFIG  ?= pg_config
PGXS       := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# An out-of-tree build needs a source tree without in-tree build products:
# VPATH would take its objects for ours (PostgreSQL's configure refuses the same).
ifneq ($(CURDIR),$(SRC))
ifneq ($(wildcard $(SRC)/$(MODULE_big).so $(addprefix $(SRC)/,$(OBJS))),)
$(error $(SRC) holds an in-tree build; run "make clean" there before building out of tree)
endif
endif

# Objects are rebuilt when AO_CFLAGS change: scripts/test.sh builds with
# assertions (-DUSE_ASSERT_CHECKING), demo.sh and the benchmarks without.
# The stamp's rule also creates the object folders (out-of-tree builds).
$(CURDIR)/build/cflags.stamp: FORCE
	@mkdir -p build $(sort $(dir $(OBJS))); echo '$(AO_CFLAGS)' | cmp -s - $@ || echo '$(AO_CFLAGS)' > $@
$(OBJS): $(CURDIR)/build/cflags.stamp
# ... and when any header of the tree changes (PGXS tracks no header
# dependencies: a struct changed in a header left objects built against the
# old layout beside ones built against the new).
$(OBJS): $(wildcard $(SRC)/src/*.h $(SRC)/src/*/*.h $(SRC)/src/core/llm/*.h)
.PHONY: FORCE
FORCE:

PROVE_FLAGS += -I test/t

# The install script: the editable sources (data model, state layer, run
# API) plus the JSON Schema documents of
# schemas/, so the validators read exactly the files in the repository.
INSTALL_SOURCES = $(addprefix $(SRC)/sql/$(EXTENSION),.sql _state.sql _api.sql _workers.sql)
$(DATA_built): $(INSTALL_SOURCES) $(wildcard $(SRC)/schemas/*.schema.json) $(SRC)/scripts/gen_schemas_sql.sh
	@mkdir -p $(@D)
	{ cat $(INSTALL_SOURCES); sh $(SRC)/scripts/gen_schemas_sql.sh $(SRC)/schemas/*.schema.json; } > $@

unit:
	$(MAKE) -C $(SRC)/test/unit
	$(MAKE) -C $(SRC)/test/unit SANITIZE=1

.PHONY: unit

# Programs: src/bin/NAME.c -> build/NAME, libpq clients installed into
# PostgreSQL's bindir. Adding one is one word in AO_PROGRAMS (extra
# libraries or flags of one program: AO_PROGRAM_FLAGS_NAME).
#   agentorch-follow  prints a run's stream live
#   agentorch-worker  an external worker that claims network steps
AO_PROGRAMS      = agentorch-follow agentorch-worker
AO_PROGRAM_FILES = $(addprefix $(CURDIR)/build/,$(AO_PROGRAMS))
all: $(AO_PROGRAM_FILES)
$(AO_PROGRAM_FILES): $(CURDIR)/build/%: $(SRC)/src/bin/%.c
	@mkdir -p $(@D)
	$(CC) -O2 -Wall -Wextra $(COPT) $(filter -D%,$(CPPFLAGS)) -I$(shell $(PG_CONFIG) --includedir) -o $@ $< \
		$(LDFLAGS) -L$(shell $(PG_CONFIG) --libdir) -lpq $(AO_PROGRAM_FLAGS_$*)
install: install-programs
install-programs: $(AO_PROGRAM_FILES)
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) $(AO_PROGRAM_FILES) '$(DESTDIR)$(bindir)/'
	@# PostgreSQL's bindir is not on PATH on Debian: link the programs into /usr/local/bin
	@# (the Debian package links them into /usr/bin instead) -- only for the system's
	@# server, not for a private copy of it elsewhere (a test's or a benchmark's)
	@if [ -z '$(DESTDIR)' ] && [ -d /usr/local/bin ] && [ -w /usr/local/bin ]; then \
		case '$(bindir)' in /usr/lib/postgresql/*|/usr/local/pgsql/*|/usr/pgsql-*) \
			for p in $(AO_PROGRAMS); do ln -sf '$(bindir)/'$$p /usr/local/bin/$$p; done;; esac; fi
.PHONY: install-programs

# agentorch-worker: an external worker (libpq + libcurl multi) that claims
# network steps; it links the PostgreSQL-free core, compiled for the program.
WORKER_CORE = $(wildcard $(SRC)/src/core/*.c $(SRC)/src/core/llm/*.c)
$(CURDIR)/build/agentorch-worker: $(WORKER_CORE) $(wildcard $(SRC)/src/core/*.h $(SRC)/src/core/llm/*.h)
AO_PROGRAM_FLAGS_agentorch-worker = -std=gnu99 -Wno-unused-parameter -Wno-missing-field-initializers \
	-Wno-sign-compare -I$(SRC)/src/core -I$(SRC)/src/core/llm $(shell pkg-config --cflags $(PKGS)) \
	$(WORKER_CORE) $(shell pkg-config --libs $(PKGS))
