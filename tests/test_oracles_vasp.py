"""VASP variant: flows built with PBE / 400 eV / >= 128 atoms, and real VASP outputs ingested."""

from __future__ import annotations

from pathlib import Path

import pytest
from pymatgen.core import Structure

from sbin_loop.config import VaspOracleConfig
from sbin_loop.oracles import JobRequest
from sbin_loop.oracles.vasp import RemoteUnavailableError, VaspDefectOracle, build_vasp_flow
from sbin_loop.workflows.vasp import vacancy_doc_from_directories, vasp_workflow_maker

FIXTURES = Path(__file__).parent / "fixtures" / "vasp_v_N_GaN"


def test_vasp_flow_inputs_are_pbe_400_ev_on_128_plus_atoms():
    defects = {"vacancies": ["O", "Sr"], "sites_per_species": 2, "antisites": 1, "interstitials": ["O"]}
    config = VaspOracleConfig(worker="cluster", defects=defects)
    flow = build_vasp_flow(config, JobRequest(job_id="j", candidate_id="SrTiO3", formula="La0.5Sr0.5TiO3", round=0))
    names = [job.name for job in flow.jobs]
    assert names[0] == "bulk relax" and names[-1] == "defect analysis"
    assert sum(name.startswith("vacancy ") and name.endswith(" relax") for name in names) == 4
    extra = [job for job in flow.jobs if job.name.startswith(("antisite ", "interstitial "))]
    assert sorted(job.name.split()[0] for job in extra) == ["antisite", "interstitial", "interstitial"]
    assert sum(name == "reference O O2" for name in names) == 1 and any("Sr fcc" in n for n in names)
    supercell = flow.jobs[0].function_args[0]
    assert isinstance(supercell, Structure) and len(supercell) >= 128

    maker = vasp_workflow_maker(config)
    for relax, isif in ((maker.bulk_relax_maker, 3), (maker.defect_relax_maker, 2)):
        inputs = relax.input_set_generator.get_input_set(supercell, potcar_spec=True)
        assert inputs.incar["ENCUT"] == 400 and inputs.incar["GGA"].upper() == "PE" and inputs.incar["ISIF"] == isif
        assert "METAGGA" not in inputs.incar and len(inputs.poscar.structure) >= 128
    for relax in extra:  # the antisite and interstitial relaxations are fixed-cell PBE runs too
        inputs = relax.maker.input_set_generator.get_input_set(supercell, potcar_spec=True)
        assert inputs.incar["ISIF"] == 2 and inputs.incar["ENCUT"] == 400 and inputs.incar["GGA"].upper() == "PE"
    molecule = maker.molecule_reference_maker.input_set_generator.get_input_set(supercell, potcar_spec=True)
    assert list(molecule.kpoints.kpts[0]) == [1, 1, 1]


def test_vasp_oracle_names_what_is_missing():
    with pytest.raises(RemoteUnavailableError, match="worker"):
        VaspDefectOracle(VaspOracleConfig())
    with pytest.raises(RemoteUnavailableError, match="jobflow-remote"):
        VaspDefectOracle(VaspOracleConfig(worker="cluster"))


def test_real_vasp_outputs_ingest_into_the_workflow_document():
    mu_n = -8.3
    doc = vacancy_doc_from_directories("GaN", FIXTURES / "bulk", [FIXTURES / "q=0"], {"N": mu_n})
    (vacancy,) = doc.vacancies
    assert vacancy.element == "N" and vacancy.neighbours == {"Ga": 4}
    assert vacancy.formation_energy == pytest.approx(-200.60111399 + 213.90677977 + mu_n, abs=1e-6)
    assert doc.bulk.n_atoms == 32 and doc.statistics["N"].n_sites == 1
    assert doc.quantities()["Ef_vac_N_mean"] == pytest.approx(vacancy.formation_energy)
