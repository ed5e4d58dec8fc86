def test_output_names_by_path_let_equal_stems_through(tmp_path):
    """A table-writing bundle names inputs by their path: ``a/x.png`` and ``b/x.png`` do not clash."""
    import numpy as np
    from PIL import Image

    from common.data.inference_inputs import check_inputs
    from common.data.slices import SlicesAdapter

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / folder / "x.png")
    items = [{"image": str(tmp_path / f / "x.png")} for f in ("a", "b")]
    usable, failed = check_inputs(SlicesAdapter(), items)
    assert len(usable) == 1 and "same name stem" in failed[0][1]
    usable, failed = check_inputs(SlicesAdapter(output_names="path"), items)
    assert len(usable) == 2 and not failed
    rel = SlicesAdapter(output_names="path").output_name({"image": "a/x.nii.gz"})
    assert rel == "a/x"
