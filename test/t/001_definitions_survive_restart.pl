# Definitions registered with the extension preloaded survive an
# immediate-mode restart (crash recovery), and the samples register.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
my $samples = $ENV{AO_SAMPLES} || "$FindBin::Bin/../../samples";

my $node = PostgreSQL::Test::Cluster->new('defs');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'agentorch'");
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION agentorch');
$node->safe_psql('postgres', slurp_file("$samples/tools.sql"));
for my $f (glob("$samples/workflows/*.yaml"))
{
	my ($name) = $f =~ m{([^/]+)\.yaml$};
	my $doc = slurp_file($f);
	$doc =~ s/'/''/g;
	my $v = $node->safe_psql('postgres',
		"SELECT agentorch.register_workflow_yaml('$name', '$doc')");
	is($v, '1', "sample $name registers as version 1");
}

my $before = $node->safe_psql('postgres',
	'SELECT string_agg(name || version || definition_hash, \',\' ORDER BY name) FROM agentorch.workflows');
$node->stop('immediate');
$node->start;
my $after = $node->safe_psql('postgres',
	'SELECT string_agg(name || version || definition_hash, \',\' ORDER BY name) FROM agentorch.workflows');
is($after, $before, 'workflows survive an immediate shutdown');
is($node->safe_psql('postgres', 'SELECT count(*) FROM agentorch.tools'), '7', 'sample tools survive');

done_testing();
