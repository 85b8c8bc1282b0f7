"""What a study keeps and shows: run outcomes and their storage, the study's results and
statistics, the output folder, saved models and their export, experiment tracking, the
console and progress display."""
